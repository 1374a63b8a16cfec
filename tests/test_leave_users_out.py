"""The leave-users-out table: its K-user splits, its profile key, its findings, and (slow)
the whole table on the smoke corpus with two-step runs."""

import math
from dataclasses import replace

import pandas as pd
import pytest

from semgkit.data import Session, load_split
from semgkit.repro import budget, leave_users_out, measured, recipes, schedule, uncertainty
from semgkit.repro.profiles import find_profile, load_profile

DATASET = {
    "train": [
        {"user": 7, "session": "a"},
        {"user": 3, "session": "b"},
        {"user": 7, "session": "c"},
        {"user": 5, "session": "d"},
        {"user": 3, "session": "e"},
        {"user": 9, "session": "f"},
    ],
    "val": [{"user": 7, "session": "v1"}, {"user": 9, "session": "v2"}],
    "test": [{"user": 1, "session": "t1"}],
}


def test_k_users_are_the_first_k_by_first_appearance_with_val_and_test_kept():
    two = leave_users_out.first_users(DATASET, 2, "generic")
    assert [e["session"] for e in two["train"]] == ["a", "b", "c", "e"]
    assert two["val"] == DATASET["val"] and two["test"] == DATASET["test"]
    assert leave_users_out.first_users(DATASET, 2, "generic") == two  # deterministic
    three = leave_users_out.first_users(DATASET, 3, "generic")
    assert {e["user"] for e in three["train"]} == {7, 3, 5}
    assert leave_users_out.first_users(DATASET, 4, "generic")["train"] == DATASET["train"]


@pytest.mark.parametrize("k", [5, 0])
def test_a_count_beyond_the_splits_users_is_a_one_line_error_naming_the_key(k):
    with pytest.raises(ValueError, match=r"\[robustness\] user_counts: .*'generic'.* 4$") as err:
        leave_users_out.first_users(DATASET, k, "generic")
    assert "\n" not in str(err.value)


def test_the_user_corpus_holds_the_first_users_beside_the_untouched_source(tmp_path):
    P = load_profile("smoke", build_dir=tmp_path)
    source = recipes.prepare_corpus(P)
    before = sorted(p.name for p in (source / "splits").iterdir())
    corpus = leave_users_out.user_corpus(P, 2)
    assert corpus.parent == tmp_path / "data" and corpus != source
    whole, part = load_split(source, "generic"), load_split(corpus, "generic-first-2-users")
    users = list(dict.fromkeys(Session(p).user for p in whole.train))
    assert {Session(p).user for p in part.train} == set(users[:2])
    assert [p.name for p in part.train] == [
        p.name for p in whole.train if Session(p).user in users[:2]
    ]
    assert [p.name for p in part.val] == [p.name for p in whole.val]
    assert [p.name for p in part.test] == [p.name for p in whole.test]
    assert leave_users_out.user_corpus(P, 2) == corpus  # reused, not rewritten
    assert sorted(p.name for p in (source / "splits").iterdir()) == before
    too_many = replace(P, robustness=replace(P.robustness, user_counts=(2, 9)))
    with pytest.raises(ValueError, match=r"\[robustness\] user_counts: 9 users .* has 4"):
        leave_users_out.counts(too_many)


def test_user_counts_are_read_and_checked(tmp_path):
    assert load_profile("laptop").robustness.user_counts == ()
    few = load_profile("few-users")
    assert few.robustness.user_counts == (8,) and "07" in few.chapters
    extra = [r for r in budget._runs(few) if "first 8 training users" in r["run"]]
    assert [(r["preset"], r["windows"]) for r in extra] == [
        ("large", 1_280_000),
        ("tiny", 1_280_000),
    ]
    good = tmp_path / "good.toml"
    good.write_text('extends = "smoke"\n[robustness]\nuser_counts = [1, 2]\n')
    assert load_profile(good).robustness.user_counts == (1, 2)
    for value in ("[0]", '["8"]', "[1.5]"):
        bad = tmp_path / "bad.toml"
        bad.write_text(
            find_profile("laptop").read_text() + f"\n[robustness]\nuser_counts = {value}\n"
        )
        with pytest.raises(ValueError, match=r"\[robustness\] user_counts: .* whole numbers"):
            load_profile(bad)
    single = tmp_path / "single.toml"
    single.write_text('extends = "single-user-smoke"\n[robustness]\nuser_counts = [1]\n')
    with pytest.raises(ValueError, match=r"\[robustness\] user_counts: needs the cross-user"):
        load_profile(single)


def _row(model, preset, params, users, cer, lo, hi):
    e = uncertainty.Estimate(cer, lo, hi, math.nan, 1)
    row = {"model": model, "preset": preset, "parameters": params, "training users": users}
    return row | uncertainty.columns("cross-user", e)


def test_findings_say_per_model_whether_cer_falls_and_which_gains_more():
    df = pd.DataFrame(
        [
            _row("teacher", "large", 100, 16, 40.0, 38.0, 42.0),
            _row("teacher", "large", 100, 8, 60.0, 57.0, 63.0),
            _row("student alone", "tiny", 2, 8, 70.0, 66.0, 74.0),
            _row("student alone", "tiny", 2, 12, 71.0, 67.0, 75.0),
            _row("student alone", "tiny", 2, 16, 68.0, 64.0, 72.0),
        ]
    )
    teacher, student, size = leave_users_out.findings(df)
    assert teacher.startswith("teacher (large): CER 60.0 [57.0, 63.0] with 8 training users")
    assert teacher.endswith(
        ": -20.0 points; 'more users, lower CER' holds; 'lower at every step' holds"
    )
    # 70 -> 71 -> 68: the rise is within noise, so the steps are too (not "does not fall")
    assert student.endswith(
        ": -2.0 points; 'more users, lower CER' within noise; 'lower at every step' within noise"
    )
    assert size.startswith("the gain from more users is larger for the larger model: large +20.0")


@pytest.mark.slow
def test_the_table_trains_fewer_users_and_reuses_the_profiles_own_runs(tmp_path):
    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(
        P,
        train=replace(P.train, steps=2, jobs=1),
        robustness=replace(P.robustness, user_counts=(2,)),
    )
    df = leave_users_out.table(P)
    assert list(df["model"]) == ["teacher", "teacher", "student alone", "student alone"]
    assert list(df["training users"]) == [2, 4, 2, 4]
    assert list(df[leave_users_out.OWN_RUN]) == [False, True, False, True]
    assert list(df["training sessions"]) == [2, 4, 2, 4]
    assert (df["test users"] == 2).all()
    own = schedule.run(P, recipes.teacher_config(P))  # the cached run, not retrained
    cer = measured.cross_user(P, own)["overall"]["CER"]
    assert df["cross-user CER %"].iloc[1] == pytest.approx(cer, abs=0.006)
    assert len(leave_users_out.findings(df)) == 3
    none = replace(P, robustness=replace(P.robustness, user_counts=()))
    assert leave_users_out.table(none) is None
