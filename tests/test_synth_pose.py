"""The synthetic pose corpus: emg2pose's layout, angles that follow the muscles, users apart."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
from pose_files import POSE_DTYPE

from semgkit.pose import PoseSession, load_pose_split
from semgkit.synth_pose import PoseSynthConfig, generate_pose, hand_angles

TINY = PoseSynthConfig(
    train_users=2, recordings=(1, 1), test_users=2, stage_s=4.0, ik_failures_per_min=30.0
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_pose(tmp_path_factory.mktemp("pose") / "c", TINY, seed=1, progress=False)


def test_files_are_in_emg2pose_layout_and_splits_hold_users_out(corpus):
    split = load_pose_split(corpus, "generic")
    assert (len(split.train), len(split.val), len(split.test)) == (4, 4, 4)
    with h5py.File(split.train[0], "r") as f:
        assert f["emg2pose/timeseries"].dtype == POSE_DTYPE
        assert f["emg2pose/timeseries"].chunks is None  # contiguous, as the release's
        assert set(f["emg2pose"].attrs) == {
            "filename",
            "session",
            "stage",
            "user",
            "side",
            "sample_rate",
            "num_channels",
            "start",
            "end",
        }
    train_users = {PoseSession(p).user for p in split.train + split.val}
    test_users = {PoseSession(p).user for p in split.test}
    assert len(train_users) == len(test_users) == 2 and not train_users & test_users
    assert {PoseSession(p).side for p in split.train} == {"left", "right"}
    with (corpus / "metadata.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["generalization"] for r in rows if r["split"] == "test"} == {"user"}
    full = load_pose_split(corpus, "full")
    # emg2pose puts every stage of a held-out user in test; generic keeps some for fine-tuning
    assert sorted(full.train) == sorted(split.train) and set(split.test) < set(full.test)
    user0 = load_pose_split(corpus, "user0")
    assert {PoseSession(p).user for p in user0.train + user0.test} == {sorted(test_users)[0]}


def test_a_band_carries_signal_only_in_its_side_and_ik_failures_are_masked(corpus):
    sessions = [PoseSession(p) for p in load_pose_split(corpus, "generic").train]
    for s in sessions:
        emg, angles, mask = s.read(0, len(s))
        assert emg[:, s.band].std() > 0.05 and not emg[:, 1 - s.band].any()
        assert np.isfinite(angles).all()
    failures = [~s.read(0, len(s))[2] for s in sessions]
    assert sum(f.sum() for f in failures) > 0  # 30 a minute: some spans in 4 x 4 s
    assert sum(len(s.valid_runs) for s in sessions) > len(sessions)


def test_angles_follow_the_fingers_muscles():
    act = np.full((400, 12), 0.03, dtype=np.float32)
    act[100:200, 2 * 3] += 1.0  # flexor of finger 3 (synth_signal: 0 pinky .. 4 thumb): index
    rest, gain = np.zeros(20), np.ones(20)
    angles = hand_angles(act, rest, gain, n=4000)
    moved = np.abs(angles[1900] - angles[0]) > 0.5  # 0.95 s, inside the press
    assert np.flatnonzero(moved).tolist() == [5, 6, 7]  # INDEX_MCP_FE, PIP_FE, DIP_FE
    assert abs(angles[3999] - angles[0]).max() < 0.05  # released: back to rest


def test_users_differ_and_the_recipe_is_reused(corpus, tmp_path):
    split = load_pose_split(corpus, "generic")
    means = {}
    for p in split.train + split.test:
        s = PoseSession(p)
        _, angles, mask = s.read(0, len(s))
        means.setdefault((s.user, s.side), []).append(angles[mask].mean(0))
    left = [np.mean(v, 0) for (u, side), v in sorted(means.items()) if side == "left"]
    assert min(np.abs(a - b).max() for i, a in enumerate(left) for b in left[i + 1 :]) > 0.02
    stamp = (corpus / "metadata.csv").stat().st_mtime_ns
    assert generate_pose(corpus, TINY, seed=1, progress=False) == corpus
    assert (corpus / "metadata.csv").stat().st_mtime_ns == stamp
