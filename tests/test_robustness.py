"""The robustness chapter's apparatus: its profile section, spec errors before any run,
and the population corpus written beside the profile's own (the book test executes it)."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from semgkit import perturb, synth
from semgkit.data import Session, load_split
from semgkit.repro import recipes, robustness, schedule, sensor_shift, uncertainty
from semgkit.repro.profiles import Robustness, find_profile, load_profile


def test_the_robustness_section_is_optional_and_read_as_a_table(tmp_path):
    assert load_profile("laptop").robustness == Robustness()
    assert load_profile("smoke").robustness == Robustness(sensor_users=1)
    custom = tmp_path / "custom.toml"
    custom.write_text(
        'extends = "smoke"\n[robustness]\nseverities = { "shift:e" = [0.5, 1.5] }\n'
        'populations = ["fast-typists"]\nsensors = ["mirror"]\n'
    )
    P = load_profile(custom)
    assert P.robustness.severities == (("shift:e", (0.5, 1.5)),)
    assert P.robustness.populations == ("fast-typists",)
    assert P.robustness.sensors == ("mirror",) and P.robustness.sensor_users == 1
    bad = tmp_path / "bad.toml"
    bad.write_text(find_profile("laptop").read_text() + "\n[robustness]\nseverity = {}\n")
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
    assert corpus.parent == recipes.prepare_corpus(P).parent
    trained = {Session(p).user for p in load_split(recipes.prepare_corpus(P), "generic").train}
    for name in P.robustness.populations:
        users = {Session(p).user for p in load_split(corpus, f"holdout-{name}").test}
        assert len(users) == 2 and not users & trained
    assert robustness.population_corpus(P) == corpus  # reused, not rewritten
    real = replace(P, corpus=replace(P.corpus, source="emg2qwerty"))
    assert robustness.population_corpus(real) is None


def test_a_bad_sensor_fails_naming_the_section_before_any_run(tmp_path, monkeypatch):
    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, robustness=replace(P.robustness, sensors=("mirror", "sparse:n=5")))
    monkeypatch.setattr(robustness, "curve_runs", lambda P: pytest.fail("trained"))
    with pytest.raises(ValueError, match=r"\[robustness\] sensors 'sparse:n=5'.*divide 16"):
        sensor_shift.sensor_table(P)


def test_sensor_corpus_is_the_users_sessions_read_through_the_sensor(tmp_path):
    """Every session of the users' personalized splits, its signal exactly what `semgkit
    eval --perturb` reads, everything else (keystrokes, names, splits) as it was."""
    P = load_profile("smoke", build_dir=tmp_path)
    source = recipes.prepare_corpus(P)
    (user,) = sensor_shift.sensor_users(
        replace(P, robustness=replace(P.robustness, sensor_users=1))
    )
    corpus = sensor_shift.sensor_corpus(P, "sparse:n=8", user)
    split = recipes.personal_split(P, user)
    assert sorted(p.name for p in (corpus / "splits").iterdir()) == [f"{split}.yaml"]
    original = load_split(source, split)
    moved = load_split(corpus, split)
    sessions = original.train + original.val + original.test
    assert [p.name for p in moved.train + moved.val + moved.test] == [p.name for p in sessions]
    assert len(list(corpus.glob("*.hdf5"))) == len(sessions)
    sensor = perturb.parse(["sparse:n=8"], seed=P.seed)
    for path in sessions:
        clean, written = Session(path), Session(corpus / path.name)
        expected = sensor.session(clean).window(0, len(clean))
        assert written.emg.tobytes() == expected.tobytes() != clean.emg.tobytes()
        assert written.keystrokes == clean.keystrokes and written.user == clean.user
        np.testing.assert_array_equal(written.timestamps, clean.timestamps)
    assert sensor_shift.sensor_corpus(P, "sparse:n=8", user) == corpus  # reused
    assert sensor_shift.sensor_corpus(P, "mirror", user) != corpus


def test_sensor_findings_are_computed_from_the_table():
    def row(model, sensor, zero, tuned):
        out = {"model": model, "sensor": sensor, "fine-tune sEMG min per user": 1.0}
        for measure, cer in (("zero-shot", zero), ("fine-tuned", tuned)):
            out |= uncertainty.columns(
                measure, uncertainty.Estimate(cer, cer - 2, cer + 2, np.nan, 1)
            )
        return out

    table = pd.DataFrame(
        [
            row("teacher", "original", 40.0, 30.0),
            row("teacher", "mirror", 80.0, 40.0),
            row("student distilled", "original", 50.0, 45.0),
            row("student distilled", "mirror", 51.0, 50.0),
            row("student distilled", "sparse", 30.0, 30.0),
        ]
    )
    lines = sensor_shift.sensor_findings(table)
    assert "mirror, teacher: zero-shot 80.0 [78.0, 82.0] against 40.0" in lines[0]
    assert "'worse on this sensor' holds" in lines[0] and "closes 80 % of the gap" in lines[0]
    assert "'worse on this sensor' within noise" in lines[1] and "closes 17 % of" in lines[1]
    assert "'worse on this sensor' does not hold" in lines[2]  # clearly better: not "noise"
    assert (
        lines[3]
        == "mirror: zero-shot the distilled student loses +1.0 points, no more than the teacher's +40.0"
    )


def test_live_rescoring_follows_the_chosen_model_perturbation_and_severity(monkeypatch):
    """Each change of a control rescores once, the chosen run under the chosen spec."""
    pytest.importorskip("ipywidgets")
    calls = []

    def fake(P, run_dir, specs):
        calls.append((run_dir, specs))
        return {"CER": 50.0, "prediction": "abc", "target": "abd", "seconds": 0.1}

    monkeypatch.setattr(robustness, "rescore", fake)
    runs = {"teacher": "t", "student distilled": "s"}
    severities = {"dead:n": (4.0, 12.0), "noise:snr": (10.0, -10.0)}
    widget = robustness.rescore_widget(None, runs, severities, "student distilled")
    model, kind, level = widget.children[0].children
    assert calls == [("s", ["dead:n=4"])]
    level.value = "12"
    model.value = "teacher"
    kind.value = "noise:snr"
    assert calls[1:] == [("s", ["dead:n=12"]), ("t", ["dead:n=12"]), ("t", ["noise:snr=10"])]
    assert level.options == ("10", "-10")


def test_stress_findings_are_computed_per_setting_from_the_table():
    def rows(model, clean, harsh, personal_clean, personal_harsh):
        out = []
        for label, cer, personal in (
            ("clean", clean, personal_clean),
            ("10", harsh, personal_harsh),
        ):
            e = uncertainty.Estimate(cer, cer - 2, cer + 2, np.nan, 1)
            p = uncertainty.Estimate(personal, personal - 2, personal + 2, np.nan, 1)
            rises = {"CER rise": cer - clean, "personalized CER rise": personal - personal_clean}
            columns = uncertainty.columns("cross-user", e) | uncertainty.columns("personalized", p)
            out.append({"model": model, "severity": label, **columns, **rises})
        return out

    models = [("teacher", 40, 60, 30, 31), ("student alone", 50, 51, 40, 70)]
    models.append(("student distilled", 45, 50, 35, 45))
    table = pd.DataFrame([r for m in models for r in rows(*m)])
    lines = robustness.stress_findings({"robustness_noise_snr": table})
    assert lines == [
        "robustness_noise_snr, cross-user: clearly worse than clean (beyond both intervals): "
        "teacher from 10; student alone never; student distilled from 10",
        "robustness_noise_snr, cross-user: at the harshest severity the distilled student's CER "
        "rises +5.0 points, no more than the teacher's +20.0 (student alone +1.0)",
        "robustness_noise_snr, personalized: clearly worse than clean (beyond both intervals): "
        "teacher never; student alone from 10; student distilled from 10",
        "robustness_noise_snr, personalized: at the harshest severity the distilled student's "
        "CER rises +10.0 points, more than the teacher's +1.0 (student alone +30.0)",
    ]


def test_the_readers_only_read_and_name_the_function_that_computes(tmp_path, monkeypatch):
    """Nothing evaluates or fine-tunes as a side effect of a read: on an empty cache each
    reader raises, naming the file and the function that writes it."""
    P = load_profile("smoke", build_dir=tmp_path)
    run, corpus = tmp_path / "run", tmp_path / "corpus"
    run.mkdir(), corpus.mkdir()
    (corpus / synth.MARKER).write_text("{}")  # a population corpus's recipe keys its results
    monkeypatch.setattr(sensor_shift, "_finetuned_dir", lambda P, r, c, s: tmp_path / "tuned")
    for module, name in [(robustness, "evaluate"), (sensor_shift, "evaluate")]:
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("evaluated"))
    monkeypatch.setattr(schedule, "personalize_job", lambda *a, **k: pytest.fail("fine-tuned"))
    reads = {
        "semgkit.repro.robustness.stress": lambda: robustness.stressed(P, run, "noise:snr=0"),
        "semgkit.repro.robustness.evaluate_held_out": lambda: robustness.held_out(
            run, corpus, "fast-typists"
        ),
        "semgkit.repro.sensor_shift.evaluate_zero_shot": lambda: sensor_shift.zero_shot(
            run, corpus, "user0"
        ),
        "semgkit.repro.sensor_shift.fine_tune": lambda: sensor_shift.fine_tuned(
            P, run, corpus, "user0"
        ),
    }
    for compute, read in reads.items():
        with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*run {compute}$"):
            read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "run"]
    assert list(run.iterdir()) == []
