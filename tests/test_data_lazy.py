"""Windows read lazily from disk: same tensors as the whole-array path, one labelling rule,
no full-length arrays kept, bounded open files, and clear errors when a file goes away."""

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from semgkit import h5files
from semgkit.charset import CHARSET
from semgkit.data import Session, load_split
from semgkit.synth import generate
from semgkit.windows import WindowedDataset
from tests.test_data import FS, T0, write_emg2qwerty

WINDOW, PAST, FUTURE = 2000, 300, 100


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("lazy") / "smoke", "smoke", seed=0, progress=False)


def in_memory_item(path, start, window, past, future):
    """The pre-lazy path, from the raw file: whole arrays, zero padding, and the labels of
    the keys whose first sample at or after the press lies in [start, start + window)."""
    with h5py.File(path, "r") as f:
        raw = f["emg2qwerty"]["timeseries"][()]
        keys = json.loads(f["emg2qwerty"].attrs["keystrokes"])
    full = np.stack([raw["emg_left"], raw["emg_right"]], axis=1).astype(np.float32)
    lo, hi = start - past, start + window + future
    emg = np.zeros((hi - lo, 2, 16), np.float32)
    emg[max(-lo, 0) : (hi - lo) - max(hi - len(full), 0)] = full[max(lo, 0) : hi]
    chars = [(k["start"], CHARSET.key_to_char(k["key"])) for k in keys]
    index = np.searchsorted(raw["time"], [t for t, c in chars if c])
    text = "".join(c for _, c in chars if c)
    inside = (index >= start) & (index < start + window)
    return emg, CHARSET.text_to_labels("".join(np.array(list(text))[inside]))


@pytest.mark.parametrize("train", [False, True])
def test_lazy_windows_equal_the_in_memory_path(corpus, train):
    paths = load_split(corpus, "generic").train
    ds = WindowedDataset(paths, WINDOW, PAST, FUTURE, train=train, seed=5)
    for index in range(len(ds)):
        emg, labels = ds[index]
        i, start = ds.items[index]
        if train:  # the drawn offset, from the same generator the dataset uses
            rng = np.random.default_rng([5, 0, index])
            start = int(rng.integers(0, max(1, len(ds.sessions[i]) - WINDOW + 1)))
        want_emg, want_labels = in_memory_item(paths[i], start, WINDOW, PAST, FUTURE)
        np.testing.assert_array_equal(emg.numpy(), want_emg)
        assert labels.tolist() == want_labels


def test_a_key_between_samples_before_a_window_is_labelled_once_by_both_paths(tmp_path):
    between = T0 + (WINDOW - 0.5) / FS  # after sample WINDOW - 1, before sample WINDOW
    keys = [
        {"key": "a", "start": T0 + (WINDOW - 1) / FS, "end": T0 + 1.5},  # last sample of window 0
        {"key": "b", "start": between, "end": between + 0.05},
        {"key": "c", "start": T0 + WINDOW / FS, "end": T0 + 1.5},  # first sample of window 1
    ]
    path = write_emg2qwerty(tmp_path / "edge.hdf5", keystrokes=keys)
    ds = WindowedDataset([path], WINDOW)
    s = ds.sessions[0]
    ts = s.timestamps
    texts = [CHARSET.labels_to_text(ds[i][1].tolist()) for i in range(len(ds))]
    assert texts == ["a", "bc"]
    assert s.text(ts[0], ts[WINDOW]) == "a" and s.text(ts[WINDOW], np.inf) == "bc"
    # emg2qwerty's inclusive [t[start], t[end - 1]] spans agree except on "b", which they lose
    inclusive = [(ts[0], ts[WINDOW - 1]), (ts[WINDOW], ts[2 * WINDOW - 1])]
    assert [[k["key"] for k in keys if lo <= k["start"] <= hi] for lo, hi in inclusive] == [
        ["a"],
        ["c"],
    ]


def test_a_session_keeps_no_full_length_array(corpus):
    ds = WindowedDataset(load_split(corpus, "generic").train, WINDOW, PAST, FUTURE, train=True)
    for index in range(len(ds)):
        ds[index]
    s = ds.sessions[0]
    assert s.emg is not s.emg  # read on demand, not cached

    def arrays(obj, depth=0):
        values = vars(obj).values() if hasattr(obj, "__dict__") else obj
        for v in values:
            if isinstance(v, np.ndarray):
                yield v
            elif isinstance(v, (list, tuple, dict)) and depth < 3:
                yield from arrays(v.values() if isinstance(v, dict) else v, depth + 1)

    for session in ds.sessions:
        sizes = [a.size for a in arrays(session)]
        assert sizes and max(sizes) < len(session) // 100  # key events only
    assert all(a.size < 1000 for a in arrays(ds) if a.dtype != object)


def test_open_files_stay_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(h5files, "MAX_OPEN_FILES", 4)
    paths = [write_emg2qwerty(tmp_path / f"s{i}.hdf5") for i in range(10)]
    ds = WindowedDataset(paths, WINDOW)
    for index in range(len(ds)):
        emg, _ = ds[index]
        assert emg.shape == (WINDOW, 2, 16)
    assert len(h5files._handles) <= 4


def test_a_rewritten_file_is_not_read_through_a_stale_handle(tmp_path):
    path = write_emg2qwerty(tmp_path / "s.hdf5")
    first = Session(path).window(0, 10)
    h5files.close_files()  # HDF5 will not truncate a file this process holds open
    write_emg2qwerty(path, emg=np.ones((4000, 2, 16), np.float32))
    assert not np.array_equal(first, Session(path).window(0, 10))
    np.testing.assert_array_equal(Session(path).window(0, 10), 1.0)


def _one_session_dataset(tmp_path):
    path = shutil.copy(write_emg2qwerty(tmp_path / "src.hdf5", n=8000), tmp_path / "live.hdf5")
    ds = WindowedDataset([path], WINDOW)
    ds[0]
    return path, ds


def test_a_file_deleted_during_a_run_is_named(tmp_path):
    path, ds = _one_session_dataset(tmp_path)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="live.hdf5.*disappeared"):
        ds[1]


def test_a_file_truncated_during_a_run_is_named(tmp_path):
    path, ds = _one_session_dataset(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(ValueError, match="live.hdf5.*changed"):
        ds[1]


def test_a_worker_reports_the_file_that_went_away(tmp_path):
    path, ds = _one_session_dataset(tmp_path)
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=1)
    path.unlink()
    with pytest.raises(FileNotFoundError, match="live.hdf5"):
        list(loader)


def test_contiguous_sessions_bypass_hdf5_and_read_the_same_windows(corpus, tmp_path):
    """The raw read (one read call at the dataset's file offset) is used for contiguous
    datasets and returns the bytes HDF5 returns; a chunked dataset falls back to HDF5."""
    path = load_split(corpus, "generic").train[0]
    session = Session(path)
    assert session._offset is not None
    chunked = tmp_path / "chunked.hdf5"
    with h5py.File(path, "r") as src, h5py.File(chunked, "w") as dst:
        group = dst.create_group("emg2qwerty")
        data = src["emg2qwerty"]["timeseries"][()]
        group.create_dataset("timeseries", data=data, chunks=(1024,), compression="gzip")
        for name, value in src["emg2qwerty"].attrs.items():
            group.attrs[name] = value
    slow = Session(chunked)
    assert slow._offset is None
    for lo, hi in [(-300, 2100), (0, len(session)), (len(session) - 50, len(session) + 70)]:
        np.testing.assert_array_equal(session.window(lo, hi), slow.window(lo, hi))
