"""The emg2pose reader against stage files built here in emg2pose's layout."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import yaml
from pose_files import POSE_DTYPE, write_stage

from semgkit.pose import PoseSession, PoseWindows, ik_ok, load_pose_split, pose_collate


def _angles(n: int, failures: list[tuple[int, int]] = ()) -> np.ndarray:
    t = np.arange(n)[:, None] / 2000.0
    angles = 0.3 + 0.2 * np.sin(2 * np.pi * t * (1 + np.arange(20)))
    for lo, hi in failures:
        angles[lo:hi] = 0.0
    return angles


def test_reader_reads_emg2pose_layout_into_its_sides_band(tmp_path):
    angles = _angles(500)
    emg = np.arange(500 * 16, dtype=np.float32).reshape(500, 16)
    left = PoseSession(write_stage(tmp_path / "a_left.hdf5", angles, emg, side="left"))
    right = PoseSession(write_stage(tmp_path / "a_right.hdf5", angles, emg, side="right"))
    assert (len(left), left.user, left.side, left.band, right.band) == (
        500,
        "d387095792",
        "left",
        0,
        1,
    )
    assert left.attrs["filename"] == "a_left" and left.stage.startswith("IndividualFinger")
    x, y, mask = left.read(100, 200)
    assert x.shape == (100, 2, 16) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 0], emg[100:200])
    assert not x[:, 1].any()
    np.testing.assert_allclose(y, angles[100:200].astype(np.float32))
    assert mask.all()
    x, _, _ = right.read(100, 200)
    np.testing.assert_array_equal(x[:, 1], emg[100:200])
    assert not x[:, 0].any()


def test_read_past_the_edges_is_zero_and_masked(tmp_path):
    s = PoseSession(write_stage(tmp_path / "s_left.hdf5", _angles(300)))
    x, y, mask = s.read(-50, 20)
    assert x.shape == (70, 2, 16)
    assert not x[:50].any() and not y[:50].any() and not mask[:50].any() and mask[50:].all()
    x, y, mask = s.read(280, 330)
    assert mask[:20].all() and not mask[20:].any() and not x[20:].any()


def test_ik_failures_are_found_and_masked_as_emg2pose_does(tmp_path):
    angles = _angles(1000, failures=[(100, 150), (600, 601)])
    angles[300, :19] = 0.0  # one angle left: not a failure (all 20 must be zero)
    s = PoseSession(write_stage(tmp_path / "f_left.hdf5", angles))
    assert s.valid_runs == [(0, 100), (150, 600), (601, 1000)]
    _, _, mask = s.read(90, 160)
    np.testing.assert_array_equal(mask, ~np.isin(np.arange(90, 160), np.arange(100, 150)))
    np.testing.assert_array_equal(ik_ok(angles), ~np.isclose(angles, 0).all(-1))
    near = np.zeros((3, 20))
    near[1, 4], near[2, 7] = 1e-8, -2e-8  # isclose's atol: within it a failure, beyond not
    np.testing.assert_array_equal(ik_ok(near), ~np.isclose(near, 0).all(-1))
    np.testing.assert_array_equal(ik_ok(near), [False, False, True])


def test_read_mask_from_the_runs_equals_the_angles_test_everywhere(tmp_path):
    """The mask a window gets (from the IK-free runs found once) is ik_ok of its angles,
    False outside the stage, for windows anywhere, edges and failures included."""
    angles = _angles(1000, failures=[(0, 5), (100, 150), (600, 601), (990, 1000)])
    s = PoseSession(write_stage(tmp_path / "m_left.hdf5", angles))
    rng = np.random.default_rng(0)
    for lo in [-50, 0, 95, 599, 980, *rng.integers(-100, 1000, 20)]:
        hi = int(lo + rng.integers(1, 300))
        _, _, mask = s.read(int(lo), hi)
        inside = np.arange(lo, hi)
        want = np.zeros(hi - lo, dtype=bool)
        ok = (inside >= 0) & (inside < 1000)
        want[ok] = ik_ok(angles[inside[ok]])
        np.testing.assert_array_equal(mask, want)


def test_ik_runs_span_the_scan_blocks(tmp_path, monkeypatch):
    import semgkit.pose as pose

    monkeypatch.setattr(pose, "SCAN_ROWS", 64)
    angles = _angles(1000, failures=[(10, 20), (500, 700)])
    s = PoseSession(write_stage(tmp_path / "b_left.hdf5", angles))
    assert s.valid_runs == [(0, 10), (20, 500), (700, 1000)]


def test_windows_skip_ik_failures_and_mask_context(tmp_path):
    s = write_stage(tmp_path / "w_left.hdf5", _angles(1000, failures=[(400, 450)]))
    ds = PoseWindows([s], window=100, past=20)
    starts = [start for _, _, _, start in ds.items]
    assert starts == [0, 100, 200, 300, 450, 550, 650, 750, 850]
    emg, angles, mask = ds[0]
    assert emg.shape == (120, 2, 16) and angles.shape == (120, 20)
    assert not mask[:20].any() and mask[20:].all()
    every = PoseWindows([s], window=100, skip_ik_failures=False)
    assert len(every) == 10
    _, _, mask = every[4]  # samples 400:500, half of them failures
    assert int(mask.sum()) == 50
    train = PoseWindows([s], window=100, train=True, seed=3)
    for index in range(len(train)):
        _, _, mask = train[(0, index)]
        assert mask.all()  # a training window never crosses a failure
    torch.testing.assert_close(train[(1, 2)], train[(1, 2)])


def test_collate_pads_and_masks_the_padding(tmp_path):
    s = write_stage(tmp_path / "c_left.hdf5", _angles(400))
    ds = PoseWindows([s], window=100)
    batch = pose_collate([ds[0], (ds[1][0][:60], ds[1][1][:60], ds[1][2][:60])])
    assert batch["emg"].shape == (2, 100, 2, 16) and batch["angles"].shape == (2, 100, 20)
    assert batch["input_lengths"].tolist() == [100, 60]
    assert batch["mask"][1, :60].all() and not batch["mask"][1, 60:].any()


def test_splits_from_a_split_file_and_from_metadata(tmp_path):
    for name in ("r1_left", "r1_right", "r2_left", "r3_right"):
        write_stage(tmp_path / f"{name}.hdf5", _angles(100), side=name.split("_")[1])
    (tmp_path / "splits").mkdir()
    split = {"train": ["r1_left", "r1_right"], "val": ["r2_left"], "test": ["r3_right"]}
    (tmp_path / "splits" / "mine.yaml").write_text(yaml.safe_dump(split))
    got = load_pose_split(tmp_path, "mine")
    assert [p.name for p in got.train] == ["r1_left.hdf5", "r1_right.hdf5"]
    with (tmp_path / "metadata.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filename", "user", "session", "stage", "side", "split"])
        for name, part in (("r1_left", "train"), ("r2_left", "val"), ("r3_right", "test")):
            w.writerow([name, "u", name[:2], "s", name.split("_")[1], part])
    full = load_pose_split(tmp_path, "full")
    assert [p.stem for p in full.train + full.val + full.test] == ["r1_left", "r2_left", "r3_right"]
    with pytest.raises(FileNotFoundError, match=r"mini.*6 missing pose file"):
        load_pose_split(tmp_path, "mini")  # shipped: emg2pose's mini split, files absent here
    with pytest.raises(FileNotFoundError, match="nope"):
        load_pose_split(tmp_path, "nope")


def test_file_without_joint_angles_is_a_one_line_error_naming_file_and_field(tmp_path):
    no_angles = np.dtype([("time", "<f8"), ("emg", "<f4", (16,))])
    path = write_stage(tmp_path / "x_left.hdf5", _angles(10), dtype=no_angles)
    with pytest.raises(ValueError, match=r"x_left\.hdf5: .*no field joint_angles") as err:
        PoseSession(path)
    assert "\n" not in str(err.value)


def test_angles_of_the_wrong_width_are_a_one_line_error(tmp_path):
    wide = np.dtype([("time", "<f8"), ("joint_angles", "<f8", (22,)), ("emg", "<f4", (16,))])
    path = write_stage(tmp_path / "y_left.hdf5", np.zeros((10, 22)), dtype=wide)
    with pytest.raises(ValueError, match=r"y_left\.hdf5: field joint_angles .*\(20,\)") as err:
        PoseSession(path)
    assert "\n" not in str(err.value)


def test_side_neither_left_nor_right_is_a_one_line_error(tmp_path):
    path = write_stage(tmp_path / "z_up.hdf5", _angles(10), side="both")
    with pytest.raises(ValueError, match=r"z_up\.hdf5: attribute side is 'both'") as err:
        PoseSession(path)
    assert "\n" not in str(err.value)


def test_not_a_pose_file_names_the_missing_group(tmp_path):
    import h5py

    path = tmp_path / "typing.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("emg2qwerty")["timeseries"] = np.zeros(4, POSE_DTYPE)
    with pytest.raises(ValueError, match=r"typing\.hdf5: no 'emg2pose/timeseries'"):
        PoseSession(path)
