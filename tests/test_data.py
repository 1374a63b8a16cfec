"""Reading emg2qwerty files, splits, windows and batches; augmentation invariants."""

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from semgkit.augment import BandJitter, BandRotation, Compose, paper_augmentation
from semgkit.charset import CHARSET
from semgkit.data import Session, load_split, personal_splits
from semgkit.synth import generate
from semgkit.windows import WindowedDataset, collate

T0 = 1.6e9
FS = 2000


def write_emg2qwerty(
    path: Path,
    n: int = 4000,
    keystrokes: list[dict] | None = None,
    condition: str = "on_keyboard",
    drop_field: str | None = None,
    drop_attr: str | None = None,
    channels: int = 16,
    emg: np.ndarray | None = None,
    times: np.ndarray | None = None,
) -> Path:
    """A session file in the exact layout of emg2qwerty's released HDF5 files."""
    fields = [("emg_left", "<f4", (channels,)), ("emg_right", "<f4", (channels,)), ("time", "<f8")]
    fields = [f for f in fields if f[0] != drop_field]
    data = np.zeros(n, dtype=np.dtype(fields))
    rng = np.random.default_rng(0)
    full = rng.standard_normal((n, 2, channels)).astype(np.float32) if emg is None else emg
    if drop_field != "emg_left":
        data["emg_left"] = full[:, 0]
    if drop_field != "emg_right":
        data["emg_right"] = full[:, 1]
    if drop_field != "time":
        data["time"] = T0 + np.arange(n) / FS if times is None else times
    if keystrokes is None:
        keystrokes = [
            {"key": "Key.shift", "start": T0 + 0.09, "end": T0 + 0.3},
            {"key": "H", "start": T0 + 0.1, "end": T0 + 0.2},
            {"key": "i", "start": T0 + 0.5, "end": T0 + 0.6},
            {"key": "Key.alt", "start": T0 + 0.8, "end": T0 + 0.85},  # not in the charset
            {"key": "Key.space", "start": T0 + 1.0, "end": T0 + 1.05},
            {"key": "Key.backspace", "start": T0 + 1.2, "end": T0 + 1.3},
            {"key": "Key.enter", "start": T0 + 1.6, "end": T0 + 1.7},
        ]
    attrs = {
        "session_name": path.stem,
        "user": "u-hand",
        "condition": condition,
        "duration_mins": n / FS / 60,
        "keystrokes": json.dumps(keystrokes),
        "prompts": json.dumps([{"payload": {"text": "Hi"}, "start": T0, "end": T0 + 1.7}]),
    }
    with h5py.File(path, "w") as f:
        group = f.create_group("emg2qwerty")
        group.create_dataset("timeseries", data=data)
        for key, value in attrs.items():
            if key != drop_attr:
                group.attrs[key] = value
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("data") / "smoke", "smoke", seed=0, progress=False)


@pytest.fixture(scope="module")
def generic(corpus):
    return load_split(corpus, "generic")


@pytest.fixture
def hand_file(tmp_path) -> Path:
    return write_emg2qwerty(tmp_path / "hand-session.hdf5")


# --- Session -----------------------------------------------------------------------------


def test_reads_a_hand_built_emg2qwerty_file(hand_file):
    s = Session(hand_file)
    with h5py.File(hand_file, "r") as f:
        raw = f["emg2qwerty"]["timeseries"][()]
    assert len(s) == 4000
    assert s.emg.shape == (4000, 2, 16) and s.emg.dtype == np.float32
    np.testing.assert_array_equal(s.emg[:, 0], raw["emg_left"])  # band 0 = left
    np.testing.assert_array_equal(s.emg[:, 1], raw["emg_right"])
    np.testing.assert_array_equal(s.timestamps, raw["time"])
    assert s.sample_rate == pytest.approx(FS)
    assert (s.user, s.session_name, s.condition) == ("u-hand", "hand-session", "on_keyboard")
    assert s.prompts[0]["payload"]["text"] == "Hi"
    assert len(s.keystrokes) == 7


def test_text_of_a_time_span(hand_file):
    s = Session(hand_file)
    assert s.text(T0, T0 + 2.0) == "⇧Hi ⌫⏎"  # Key.alt is outside the charset
    assert s.text(T0 + 0.1, T0 + 0.5) == "H"  # [start, end): 0.5 excluded
    assert s.text(T0 + 0.5, T0 + 1.1) == "i "
    assert s.text(T0 + 1.7, T0 + 2.0) == ""


def test_key_events_index_the_first_sample_at_or_after_each_press(hand_file, corpus):
    s = Session(hand_file)
    index, text = s.key_events()
    assert text == "⇧Hi ⌫⏎"
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, [180, 200, 1000, 2000, 2400, 3200])
    for path in sorted(corpus.glob("*.hdf5"))[:3]:
        s = Session(path)
        index, text = s.key_events()
        presses = [k["start"] for k in s.keystrokes if CHARSET.key_to_char(k["key"])]
        assert len(index) == len(text) == len(presses)
        ts = s.timestamps
        assert np.all(ts[index] >= presses)
        assert np.all(ts[index - 1] < presses)


def test_missing_file_is_named(tmp_path):
    path = tmp_path / "nope.hdf5"
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        Session(path)


def test_not_hdf5_is_named(tmp_path):
    path = tmp_path / "text.hdf5"
    path.write_text("this is not an HDF5 file")
    with pytest.raises(ValueError, match="text.hdf5"):
        Session(path)


def test_truncated_file_is_named(tmp_path):
    path = write_emg2qwerty(tmp_path / "cut.hdf5")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.hdf5.*truncated"):
        Session(path)


def test_missing_group_is_named(tmp_path):
    path = tmp_path / "nogroup.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("timeseries", data=np.zeros(3))
    with pytest.raises(ValueError, match="nogroup.hdf5.*emg2qwerty"):
        Session(path)


@pytest.mark.parametrize("field", ["emg_left", "emg_right", "time"])
def test_missing_field_is_named(tmp_path, field):
    path = write_emg2qwerty(tmp_path / "nofield.hdf5", drop_field=field)
    with pytest.raises(ValueError, match=f"nofield.hdf5.*{field}"):
        Session(path)


@pytest.mark.parametrize("attr", ["session_name", "user", "condition", "keystrokes", "prompts"])
def test_missing_attribute_is_named(tmp_path, attr):
    path = write_emg2qwerty(tmp_path / "noattr.hdf5", drop_attr=attr)
    with pytest.raises(ValueError, match=f"noattr.hdf5.*{attr}"):
        Session(path)


def _fully_read(path: Path) -> None:
    s = Session(path)
    s.emg, s.key_events(), s.sample_rate


BAD_SIGNALS = {
    "wrong_channel_count": dict(channels=8),
    "nan_samples": dict(
        emg=np.where(np.arange(4000)[:, None, None] == 7, np.nan, np.ones((1, 2, 16)))
    ),
    "infinite_samples": dict(
        emg=np.where(np.arange(4000)[:, None, None] == 7, np.inf, np.ones((1, 2, 16)))
    ),
    "time_goes_backwards": dict(times=T0 + np.r_[np.arange(2000), np.arange(2000)] / FS),
    "keystroke_after_recording": dict(
        keystrokes=[{"key": "a", "start": T0 + 10.0, "end": T0 + 10.1}]
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SIGNALS))
def test_bad_signal_is_rejected_naming_the_file(tmp_path, case):
    path = write_emg2qwerty(tmp_path / f"{case}.hdf5", **BAD_SIGNALS[case])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a documented skip-with-warning counts as well
        with pytest.raises((ValueError, UserWarning), match=case):
            _fully_read(path)


def test_repeated_timestamps_are_accepted(tmp_path):
    """Real files' time is non-decreasing, not strictly increasing (emg2qwerty accepts it)."""
    times = T0 + np.r_[np.arange(2000), 1999, np.arange(2000, 3999)] / FS
    s = Session(write_emg2qwerty(tmp_path / "repeat.hdf5", times=times))
    assert len(s.emg) == 4000
    index, text = s.key_events()
    assert text == "⇧Hi ⌫⏎" and np.all(np.diff(index) >= 0)


def test_time_going_backwards_names_the_file_and_sample(tmp_path):
    times = T0 + np.r_[0, 1, 2, 1, 3:3999] / FS
    path = write_emg2qwerty(tmp_path / "back.hdf5", times=times)
    with pytest.raises(ValueError, match=r"back\.hdf5: field time goes backwards at sample 3"):
        _fully_read(path)


# --- splits ------------------------------------------------------------------------------


def write_split(root: Path, name: str, dataset) -> None:
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / f"{name}.yaml").write_text(
        yaml.safe_dump({"user": name, "dataset": dataset})
    )


def test_missing_split_names_the_known_ones(corpus):
    with pytest.raises(FileNotFoundError, match=r"nosuch.*generic.*user0"):
        load_split(corpus, "nosuch")


def test_missing_data_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        load_split(tmp_path / "absent", "generic")


def test_split_without_dataset_mapping(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "bad.yaml").write_text("user: x\n")
    with pytest.raises(ValueError, match="bad.yaml.*dataset"):
        load_split(tmp_path, "bad")


def test_split_entry_without_session(tmp_path):
    write_emg2qwerty(tmp_path / "s0.hdf5")
    write_split(tmp_path, "bad", {"train": [{"user": "u", "session": "s0"}, {"user": "u"}]})
    with pytest.raises(ValueError, match=r"bad.yaml.*train\[1\].*session"):
        load_split(tmp_path, "bad")


def test_split_naming_a_missing_session(tmp_path):
    write_emg2qwerty(tmp_path / "s0.hdf5")
    write_split(tmp_path, "bad", {"val": [{"session": "s0"}, {"session": "ghost"}]})
    with pytest.raises(FileNotFoundError, match="ghost.hdf5"):
        load_split(tmp_path, "bad")


def test_split_error_names_a_few_missing_sessions_and_counts_all(tmp_path):
    write_split(
        tmp_path, "two", {"train": [{"session": "ghost1"}], "test": [{"session": "ghost2"}]}
    )
    with pytest.raises(FileNotFoundError, match="2 missing session.*ghost1.*ghost2"):
        load_split(tmp_path, "two")
    write_split(tmp_path, "many", {"train": [{"session": f"ghost{i}"} for i in range(1000)]})
    with pytest.raises(FileNotFoundError) as err:
        load_split(tmp_path, "many")
    message = str(err.value)
    assert "1000 missing session" in message and "ghost0.hdf5" in message
    assert "ghost999" not in message and len(message) < 1000


def write_release_split(root: Path, name: str, sessions: dict[str, list[str]]) -> None:
    """A split file as the release ships it: a label header over numeric user ids."""
    (root / "splits").mkdir(exist_ok=True)
    dataset = {
        part: [{"user": int(user), "session": f"{user}-{part}"} for user in users]
        for part, users in sessions.items()
    }
    text = "# @package _global_\n" + yaml.safe_dump({"user": name, "dataset": dataset})
    (root / "splits" / f"{name}.yaml").write_text(text)


def test_personal_splits_are_keyed_by_the_session_user_ids(tmp_path):
    # the real user0.yaml says `user: user0` over sessions of user 89335547 (unquoted: an int)
    write_release_split(tmp_path, "user0", {"train": ["89335547"], "test": ["89335547"]})
    write_release_split(tmp_path, "user1", {"val": ["71409769"], "test": ["71409769"]})
    write_release_split(tmp_path, "generic", {"train": ["11944098"], "test": ["89335547"]})
    assert personal_splits(tmp_path) == {"89335547": "user0", "71409769": "user1"}


def test_personal_splits_refuse_a_user_in_two_splits_or_an_entry_without_user(tmp_path):
    write_release_split(tmp_path, "user0", {"test": ["89335547"]})
    write_release_split(tmp_path, "user1", {"test": ["89335547"]})
    with pytest.raises(ValueError, match=r"user1\.yaml: user 89335547 also has split 'user0'"):
        personal_splits(tmp_path)
    write_split(tmp_path, "user1", {"test": [{"session": "s0"}]})
    with pytest.raises(ValueError, match=r"user1\.yaml: dataset\.test\[0\] has no 'user'"):
        personal_splits(tmp_path)


def test_split_parts_missing_are_empty(tmp_path):
    write_emg2qwerty(tmp_path / "s0.hdf5")
    write_split(tmp_path, "only-train", {"train": [{"session": "s0"}]})
    split = load_split(tmp_path, "only-train")
    assert split.train == [tmp_path / "s0.hdf5"] and split.val == [] and split.test == []


# --- WindowedDataset ---------------------------------------------------------------------

WINDOW, PAST, FUTURE = 2000, 300, 100


def test_eval_windows_tile_sessions_with_context(generic):
    ds = WindowedDataset(generic.train, WINDOW, PAST, FUTURE)
    sessions = ds.sessions
    assert len(ds) == sum(len(range(0, len(s) - WINDOW + 1, WINDOW)) for s in sessions)
    for index in (0, 1, len(ds) - 1):
        emg, labels = ds[index]
        assert emg.shape == (PAST + WINDOW + FUTURE, 2, 16) and emg.dtype == torch.float32
        assert labels.dtype == torch.long
        i, start = ds.items[index]
        full = sessions[i].emg
        lo, hi = start - PAST, start + WINDOW + FUTURE
        expected = np.zeros((hi - lo, 2, 16), np.float32)
        expected[max(-lo, 0) : (hi - lo) - max(hi - len(full), 0)] = full[max(lo, 0) : hi]
        np.testing.assert_array_equal(emg.numpy(), expected)  # zero padding at the edges
    assert not ds[0][0][:PAST].any()  # first window: the past is padding


def test_eval_labels_are_the_text_of_the_central_window(generic):
    ds = WindowedDataset(generic.train + generic.test, WINDOW, PAST, FUTURE)
    nonempty = 0
    for index in range(len(ds)):
        i, start = ds.items[index]
        s = ds.sessions[i]
        ts = s.timestamps
        end = ts[start + WINDOW] if start + WINDOW < len(s) else np.inf
        labels = ds[index][1].tolist()
        assert CHARSET.labels_to_text(labels) == s.text(ts[start], end)
        nonempty += bool(labels)
        press, _ = s.key_events()
        inside = press[(press >= start) & (press < start + WINDOW)]
        assert len(inside) == len(labels)  # every labelled key press lies in its window
    assert nonempty > len(ds) // 2


def test_eval_stride_and_user(generic):
    ds = WindowedDataset(generic.test, WINDOW, stride=WINDOW // 2)
    starts = [start for i, start in ds.items if i == 0]
    assert starts[:3] == [0, WINDOW // 2, WINDOW]
    assert {ds.user(i) for i in range(len(ds))} == set(generic.test_users)


def test_window_longer_than_session_is_padded(hand_file):
    ds = WindowedDataset([hand_file], window=6000)
    emg, labels = ds[0]
    assert len(ds) == 1 and emg.shape == (6000, 2, 16)
    assert not emg[4000:].any()
    assert CHARSET.labels_to_text(labels.tolist()) == "⇧Hi ⌫⏎"


def _train_items(ds, indices=range(6)):
    return [ds[i] for i in indices]


def _same(a, b) -> bool:
    return all(
        torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True)
    )


def test_train_offsets_are_a_function_of_seed_epoch_and_index(generic):
    make = lambda seed: WindowedDataset(generic.train, WINDOW, PAST, FUTURE, train=True, seed=seed)  # noqa: E731
    a, b = make(3), make(3)
    first = _train_items(a)
    assert _same(first, _train_items(b))
    assert _same(first, _train_items(a))  # reading again gives the same windows
    a.set_epoch(1)
    second = _train_items(a)
    assert not _same(first, second)
    b.set_epoch(1)
    assert _same(second, _train_items(b))
    a.set_epoch(0)
    assert _same(first, _train_items(a))
    assert not _same(first, _train_items(make(4)))
    # random offsets: not the eval tiling
    evals = WindowedDataset(generic.train, WINDOW, PAST, FUTURE)
    assert not _same(first, _train_items(evals))


def test_train_labels_match_the_window_drawn(generic):
    ds = WindowedDataset(generic.train, WINDOW, 0, 0, train=True, seed=1)
    for index in range(8):
        emg, labels = ds[index]
        i, _ = ds.items[index]
        full = ds.sessions[i].emg
        # find the drawn offset from the signal and check its labels
        hits = np.flatnonzero((full[: len(full) - WINDOW + 1] == emg[0].numpy()).all((1, 2)))
        assert len(hits) == 1
        press, chars = ds.sessions[i].key_events()
        inside = (press >= hits[0]) & (press < hits[0] + WINDOW)
        assert CHARSET.labels_to_text(labels.tolist()) == "".join(np.array(list(chars))[inside])


def test_transform_is_applied_with_the_item_generator(generic):
    plain = WindowedDataset(generic.train, WINDOW, train=True, seed=2)
    rotated = WindowedDataset(generic.train, WINDOW, train=True, seed=2, transform=BandRotation())
    again = WindowedDataset(generic.train, WINDOW, train=True, seed=2, transform=BandRotation())
    assert _same(_train_items(rotated), _train_items(again))
    for (x, _), (y, _) in zip(_train_items(plain), _train_items(rotated), strict=True):
        x, y = x.numpy(), y.numpy()
        for band in range(2):  # same window, each band rolled by -1, 0 or +1 electrodes
            assert any(np.array_equal(y[:, band], np.roll(x[:, band], s, -1)) for s in (-1, 0, 1))


@pytest.mark.parametrize(
    "window, past, future", [(0, 0, 0), (-5, 0, 0), (100, -1, 0), (100, 0, -1)]
)
def test_bad_window_lengths(generic, window, past, future):
    with pytest.raises(ValueError, match="window"):
        WindowedDataset(generic.train, window, past, future)


def test_sessions_without_typed_ground_truth_are_skipped_with_a_warning(tmp_path):
    typed = write_emg2qwerty(tmp_path / "typed.hdf5")
    air = write_emg2qwerty(tmp_path / "air.hdf5", condition="off_keyboard")
    with pytest.warns(UserWarning, match=r"air.hdf5.*off_keyboard"):
        ds = WindowedDataset([typed, air], window=1000)
    assert [s.path for s in ds.sessions] == [typed]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no sessions"):
        WindowedDataset([air], window=1000)


def test_collate_pads_and_reports_lengths():
    batch = [
        (torch.ones(5, 2, 16), torch.tensor([1, 2, 3])),
        (2 * torch.ones(3, 2, 16), torch.tensor([4])),
        (3 * torch.ones(4, 2, 16), torch.tensor([], dtype=torch.long)),
    ]
    out = collate(batch)
    assert set(out) == {"emg", "input_lengths", "targets", "target_lengths"}
    assert out["emg"].shape == (3, 5, 2, 16) and out["emg"].dtype == torch.float32
    assert out["input_lengths"].tolist() == [5, 3, 4]
    assert out["target_lengths"].tolist() == [3, 1, 0]
    assert out["targets"].tolist() == [[1, 2, 3], [4, 0, 0], [0, 0, 0]]
    assert out["input_lengths"].dtype == out["targets"].dtype == torch.long
    assert torch.equal(out["emg"][1, :3], batch[1][0]) and not out["emg"][1, 3:].any()


def test_dataloader_batches(generic):
    ds = WindowedDataset(generic.train, WINDOW, PAST, FUTURE, train=True)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)))
    assert batch["emg"].shape == (4, PAST + WINDOW + FUTURE, 2, 16)
    assert batch["targets"].shape[1] == int(batch["target_lengths"].max())


# --- augmentation ------------------------------------------------------------------------


@pytest.fixture
def window() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((500, 2, 16)).astype(np.float32)


def test_band_rotation_rolls_each_band_by_an_allowed_offset(window):
    seen = set()
    for seed in range(20):
        out = BandRotation()(window, np.random.default_rng(seed))
        assert out.shape == window.shape and out.dtype == window.dtype
        for band in range(2):
            shifts = [
                s
                for s in (-1, 0, 1)
                if np.array_equal(out[:, band], np.roll(window[:, band], s, -1))
            ]
            assert len(shifts) == 1
            seen.add(shifts[0])
    assert seen == {-1, 0, 1}
    np.testing.assert_array_equal(BandRotation((0,))(window, np.random.default_rng(0)), window)


def test_band_jitter_shifts_the_right_band_only(window):
    shifts = set()
    for seed in range(20):
        out = BandJitter(120)(window, np.random.default_rng(seed))
        assert out.shape == window.shape
        np.testing.assert_array_equal(out[:, 0], window[:, 0])
        match = [
            s
            for s in range(-120, 121)
            if np.array_equal(
                out[max(s, 0) : 500 + min(s, 0), 1], window[max(-s, 0) : 500 - max(s, 0), 1]
            )
        ]
        assert len(match) == 1
        s = match[0]
        zeros = out[:s, 1] if s > 0 else out[500 + s :, 1]
        assert not zeros.any()  # zero-filled, not wrapped around
        shifts.add(s)
    assert len(shifts) > 10
    assert not np.shares_memory(out, window)


def test_augmentations_are_deterministic_for_a_seed(window):
    aug = paper_augmentation()
    a = aug(window, np.random.default_rng(11))
    b = aug(window, np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, aug(window, np.random.default_rng(s))) for s in range(12, 16))


def test_compose_applies_in_order(window):
    rot, jit = BandRotation(), BandJitter(50)
    rng1, rng2 = np.random.default_rng(3), np.random.default_rng(3)
    expected = jit(rot(window, rng1), rng1)
    np.testing.assert_array_equal(Compose([rot, jit])(window, rng2), expected)
    np.testing.assert_array_equal(Compose([])(window, rng2), window)
