"""Chapter 8's machinery: the [pose] profile section and tasks, intervals of angle errors,
the schematic hand, and a pose-only profile running the pose chapter alone."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from pose_files import write_stage

from semgkit import models
from semgkit.pose import load_pose_split
from semgkit.pose_metrics import PoseErrors
from semgkit.pose_train import POSE, evaluate_pose
from semgkit.repro import hand_sketch
from semgkit.repro import pose_experiments as pe
from semgkit.repro.profiles import load_profile
from semgkit.repro.uncertainty import estimate
from semgkit.runs import TrainConfig
from semgkit.synth_pose import generate_pose
from tests.test_book import book_tool, one_chapter_book

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_pose(tmp_path_factory.mktemp("pose") / "smoke", "smoke", progress=False)


def test_profiles_name_their_tasks_and_a_pose_only_profile_takes_data_for_pose(tmp_path):
    smoke, paper = load_profile("smoke"), load_profile("paper")
    assert smoke.tasks == ("typing", "pose") and smoke.pose.ladder == ("lap-xxs", "lap-xs")
    assert paper.tasks == ("typing",) and paper.pose is None
    mini = load_profile("pose-mini", data_dir=tmp_path)
    assert mini.tasks == ("pose",) and mini.pose.source == "emg2pose"
    assert mini.pose.path == str(tmp_path) and mini.corpus.path == ""
    assert mini.pose.steps == load_profile("laptop").pose.steps  # extends laptop's [pose]
    assert load_profile("smoke", data_dir=tmp_path).corpus.path == str(tmp_path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('tasks = ["pose"]\n', "no [pose] section"),
        ('tasks = ["speech"]\n', "tasks ['speech']"),
        ("\n[pose]\nstepz = 3\n", "[pose]: unknown key(s) ['stepz']"),
    ],
)
def test_bad_tasks_or_pose_keys_are_one_line_errors(tmp_path, extra, message):
    text = (ROOT / "book/profiles/paper.toml").read_text()
    first = text.index("\n[")  # top-level keys go before the first section
    bad = tmp_path / "bad.toml"
    body = text[:first] + "\n" + extra + text[first:] if extra.startswith("tasks") else text + extra
    bad.write_text(body)
    with pytest.raises(ValueError, match=str(bad)) as err:
        load_profile(bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_group_intervals_pool_to_the_overall_error():
    """Groups carry error x samples and samples: the pooled ratio is the overall MAE."""
    gen = torch.Generator().manual_seed(0)
    overall, parts = PoseErrors(), {}
    for user, n in (("a", 30), ("b", 70), ("c", 10)):
        pred, target = torch.randn(2, n, 20, generator=gen, dtype=torch.float64).unbind(0)
        mask = torch.ones(n, dtype=torch.bool)
        overall.add(pred, target, mask)
        parts[user] = PoseErrors()
        parts[user].add(pred, target, mask)
    result = {"overall": overall.summary(), **{u: e.summary() for u, e in parts.items()}}
    e = estimate([pe.groups(result)])
    assert e.cer == pytest.approx(result["overall"]["MAE"], rel=1e-12)
    assert e.lo <= e.cer <= e.hi and math.isnan(e.seed_range)
    columns = pe.mae_columns("cross-user", e)
    assert set(columns) == {
        f"cross-user {c}" for c in ("MAE deg", "CI95 lo", "CI95 hi", "seed range")
    }
    assert pe.mae_estimate(pd.Series({**columns, "seeds": 1}), "cross-user").cer == round(e.cer, 2)


def _config(corpus):
    """A one-second pose window with no context, on the test corpus."""
    windows = dict(window_s=1.0, past_s=0.0, future_s=0.0)
    return TrainConfig(data_dir=str(corpus), preset="lap-xxs", model=POSE, **windows)


def test_errors_by_stage_pool_to_the_overall_error(corpus):
    test = load_pose_split(corpus, "generic").test
    config = _config(corpus)
    torch.manual_seed(0)
    result = evaluate_pose(models.build("lap-xxs", **POSE), test, config, by="stage")
    stages = {k: v for k, v in result.items() if k != "overall"}
    assert sorted(stages) == sorted(p.stem for p in test)
    samples = sum(v["samples"] for v in stages.values())
    assert samples == result["overall"]["samples"]
    pooled = sum(v["MAE"] * v["samples"] for v in stages.values()) / samples
    assert pooled == pytest.approx(result["overall"]["MAE"], rel=1e-9)
    with pytest.raises(ValueError, match="by='session'"):
        evaluate_pose(models.build("lap-xxs", **POSE), test, config, by="session")


def test_schematic_hand_straight_and_bent():
    straight = hand_sketch.finger_points(np.zeros(20))
    x, y, spread, bones = hand_sketch.FINGER_GEOMETRY["middle"]
    tip = np.array([x + sum(bones) * np.sin(spread), y + sum(bones) * np.cos(spread), 0.0])
    np.testing.assert_allclose(straight["middle"][-1], tip, atol=1e-12)
    angles = np.zeros(20)
    angles[9] = np.pi / 2  # MIDDLE_MCP_FE: the whole finger points into the palm
    bent = hand_sketch.finger_points(angles)["middle"]
    np.testing.assert_allclose(bent[1:, :2], np.repeat(bent[:1, :2], 3, 0), atol=1e-12)
    np.testing.assert_allclose(bent[-1, 2], -sum(bones), atol=1e-12)
    xs, ys = hand_sketch.hand_lines(angles)
    assert len(xs) == len(ys) and xs.count(None) == 6  # the palm and five fingers
    with pytest.raises(ValueError, match=r"\(19,\) angles"):
        hand_sketch.finger_points(np.zeros(19))


def test_a_pose_only_profile_skips_the_typing_chapters(tmp_path, monkeypatch, capsys):
    """A typing chapter under a pose-only profile is not run, and its executed copy from an
    earlier run is removed (html publishes this run's chapters only)."""
    book = one_chapter_book(tmp_path / "book", "raise RuntimeError('a typing chapter ran')")
    monkeypatch.setattr(book_tool, "BOOK", book)
    stale = tmp_path / "build" / "book" / "99_broken.ipynb"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert book_tool.run("pose-mini", tmp_path / "build", str(tmp_path), None) == 0
    assert "skipping 99_broken.md (a typing chapter; the profile runs pose)" in (
        capsys.readouterr().out
    )
    assert not stale.exists()
    assert book_tool.chapter_task(ROOT / "book" / "08_pose.md") == "pose"
    with pytest.raises(SystemExit, match="book: no profile named 'no-such'"):
        book_tool.run("no-such", tmp_path / "build", None, None)


MINI = yaml.safe_load((ROOT / "semgkit/assets/pose_split_mini.yaml").read_text())


def mini_layout(corpus: Path, dest: Path) -> Path:
    """The mini set's six stage files (one user, train/val/test per side), their signals and
    angles taken from synthetic stages of one training user."""
    dest.mkdir()
    train = load_pose_split(corpus, "generic")
    sources = {"train": train.train, "val": train.val, "test": train.train}
    for part, names in MINI.items():
        for name in names:
            side = name.rsplit("_", 1)[1]
            source = next(p for p in sources[part] if p.stem.endswith(side))
            with h5py.File(source) as f:
                records = f["emg2pose/timeseries"][()]
            angles, emg = records["joint_angles"], records["emg"]
            write_stage(dest / f"{name}.hdf5", angles, emg, side=side, user="e3096")
    return dest


@pytest.mark.slow
def test_pose_mini_profile_runs_the_pose_chapter_on_the_mini_layout(corpus, tmp_path):
    """`make book PROFILE=pose-mini DATA=DIR` on data in the mini set's layout (synthetic
    signals), with a profile extending pose-mini for a few steps: chapter 8 alone runs,
    its tables say same-user and have no personalized columns (no held-out users)."""
    data = mini_layout(corpus, tmp_path / "mini")
    quick = tmp_path / "pose-mini-quick.toml"
    quick.write_text(
        'extends = "pose-mini"\n[train]\njobs = 1\nnum_threads = 1\n[pose]\nsteps = 2\n'
        'batch_size = 4\nval_windows = 4\nladder = ["lap-xxs", "lap-xs"]\nalphas = [0.5]\n'
    )
    build = tmp_path / "build"
    assert book_tool.run(str(quick), build, str(data), None) == 0
    assert [p.name for p in (build / "book").glob("[0-9][0-9]_*.ipynb")] == ["08_pose.ipynb"]
    scaling = pd.read_csv(build / "results" / "pose_scaling.csv")
    assert "same-user MAE deg" in scaling and "personalized MAE deg" not in scaling
    assert (scaling["data_source"] == "emg2pose").all()
    corpus_table = pd.read_csv(build / "results" / "pose_corpus.csv")
    assert list(corpus_table["stages"]) == [2, 2, 2] and list(corpus_table["users"]) == [1, 1, 1]


def test_mean_pose_baseline_is_scored_as_the_models_are(corpus, tmp_path):
    from dataclasses import replace

    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, pose=replace(P.pose, path=str(corpus)))
    result = pe.mean_pose_errors(P)
    config = _config(corpus)
    test = load_pose_split(corpus, "generic").test
    model = evaluate_pose(models.build("lap-xxs", **POSE), test, config, by="user")
    assert result.keys() == model.keys()  # the same groups (held-out users)
    assert all(result[k]["samples"] == model[k]["samples"] for k in result)
    e = estimate([pe.groups(result)])
    assert e.cer == pytest.approx(result["overall"]["MAE"], rel=1e-9) and e.cer > 0


def test_errors_only_reads_and_names_the_function_that_evaluates(tmp_path, monkeypatch):
    """Reading a run's pose errors never evaluates it: on an empty cache the reader raises,
    naming the file and `evaluate_errors`, the function that writes it."""
    P = load_profile("smoke", build_dir=tmp_path)
    monkeypatch.setattr(pe, "_grouping", lambda P: "user")
    monkeypatch.setattr(pe, "evaluate_pose_run", lambda *a, **k: pytest.fail("evaluated"))
    with pytest.raises(FileNotFoundError) as error:
        pe.errors(P, tmp_path, "generic")
    message = str(error.value)
    assert "pose-eval-generic-test-by-user.json" in message
    assert message.endswith("run semgkit.repro.pose_experiments.evaluate_errors")
    assert list(tmp_path.iterdir()) == []
