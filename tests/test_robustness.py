"""The robustness chapter's apparatus: its profile section, spec errors before any run,
and the population corpus written beside the profile's own (the book test executes it)."""

from dataclasses import replace

import pytest

from semgkit import experiments, robustness
from semgkit.data import Session, load_split
from semgkit.profiles import Robustness, find_profile, load_profile


def test_the_robustness_section_is_optional_and_read_as_a_table(tmp_path):
    assert load_profile("smoke").robustness == Robustness()
    custom = tmp_path / "custom.toml"
    custom.write_text(
        'extends = "smoke"\n[robustness]\nseverities = { "shift:e" = [0.5, 1.5] }\n'
        'populations = ["fast-typists"]\n'
    )
    P = load_profile(custom)
    assert P.robustness.severities == (("shift:e", (0.5, 1.5)),)
    assert P.robustness.populations == ("fast-typists",)
    bad = tmp_path / "bad.toml"
    bad.write_text(find_profile("smoke").read_text() + "\n[robustness]\nseverity = {}\n")
    with pytest.raises(ValueError, match=r"\[robustness\].*severity"):
        load_profile(bad)


def test_a_bad_severity_fails_naming_the_section_before_any_run(tmp_path, monkeypatch):
    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, robustness=Robustness(severities=(("noise:snr", (10.0,)), ("dead:ch", (40.0,)))))
    monkeypatch.setattr(robustness, "curve_runs", lambda P: pytest.fail("trained"))
    with pytest.raises(ValueError, match=r"\[robustness\] severities 'dead:ch=40'.*out of range"):
        robustness.stress_tables(P)
    assert robustness.severity_spec("rotate:k", 2.0) == "rotate:k=2"


def test_population_corpus_holds_only_held_out_users_beside_the_profile_corpus(tmp_path):
    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, robustness=replace(P.robustness, population_users=2))
    corpus = robustness.population_corpus(P)
    assert corpus.parent == experiments.prepare_corpus(P).parent
    trained = {Session(p).user for p in load_split(experiments.prepare_corpus(P), "generic").train}
    for name in P.robustness.populations:
        users = {Session(p).user for p in load_split(corpus, f"holdout-{name}").test}
        assert len(users) == 2 and not users & trained
    assert robustness.population_corpus(P) == corpus  # reused, not rewritten
    real = replace(P, corpus=replace(P.corpus, source="emg2qwerty"))
    assert robustness.population_corpus(real) is None
