"""Reading emg2qwerty sessions and splits, and cutting them into training windows.

One reader serves the real dataset and the synthetic corpus, since both are written in
emg2qwerty's layout: an HDF5 file per session (group ``emg2qwerty``, compound dataset
``timeseries`` with ``emg_left``, ``emg_right``, ``time``; keystrokes and prompts as JSON
attributes) and split files listing ``{user, session}`` under ``dataset.train|val|test``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from torch.utils.data import Dataset

from semgkit.charset import CHARSET
from semgkit.format import ATTRS, ELECTRODES, FIELDS, GROUP
from semgkit.format import TIMESERIES as DATASET

SHOW_MISSING = 5  # a split naming many absent sessions shows the first few and the count
TYPED_CONDITION = "on_keyboard"  # keystrokes are ground truth only when typed on a keyboard


class Session:
    """One emg2qwerty session file; the signal is read on first use and kept."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such session file")
        try:
            with h5py.File(self.path, "r") as f:
                if GROUP not in f or DATASET not in f[GROUP]:
                    raise ValueError(f"{self.path}: no '{GROUP}/{DATASET}' dataset")
                group = f[GROUP]
                names = group[DATASET].dtype.names or ()
                attrs = dict(group.attrs)
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({err})") from err
        missing = [n for n in FIELDS if n not in names] + [a for a in ATTRS if a not in attrs]
        if missing:
            raise ValueError(f"{self.path}: not an emg2qwerty session, missing {missing}")
        with h5py.File(self.path, "r") as f:
            dtype = f[GROUP][DATASET].dtype
        for band in FIELDS[:2]:
            if dtype[band].shape != (ELECTRODES,):
                raise ValueError(
                    f"{self.path}: field {band} has shape {dtype[band].shape} per sample, "
                    f"expected ({ELECTRODES},)"
                )
        self.session_name = str(attrs["session_name"])
        self.user = str(attrs["user"])
        self.condition = str(attrs["condition"])
        self.keystrokes: list[dict] = json.loads(attrs["keystrokes"])
        self.prompts: list[dict] = json.loads(attrs["prompts"])

    @cached_property
    def _series(self) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            series = f[GROUP][DATASET][()]
        bad = ~np.isfinite(series["emg_left"]) | ~np.isfinite(series["emg_right"])
        if bad.any():
            first = int(np.argwhere(bad)[0][0])
            raise ValueError(f"{self.path}: non-finite sEMG samples (first at sample {first})")
        steps = np.diff(series["time"])
        if (steps < 0).any():  # a repeated timestamp is fine: emg2qwerty allows it too
            first = int(np.argmax(steps < 0)) + 1
            raise ValueError(f"{self.path}: field time goes backwards at sample {first}")
        return series

    @cached_property
    def emg(self) -> np.ndarray:
        """(T, 2, 16) float32, band 0 = left wrist."""
        s = self._series
        return np.stack([s["emg_left"], s["emg_right"]], axis=1).astype(np.float32)

    @property
    def timestamps(self) -> np.ndarray:
        return self._series["time"]

    @cached_property
    def sample_rate(self) -> float:
        t = self.timestamps
        return float((len(t) - 1) / (t[-1] - t[0]))

    def __len__(self) -> int:
        return len(self._series)

    def key_events(self) -> tuple[np.ndarray, str]:
        """(sample index of each press, label string), keys outside the charset dropped."""
        presses, chars = [], []
        for k in self.keystrokes:
            char = CHARSET.key_to_char(k["key"])
            if char is not None:
                presses.append(k["start"])
                chars.append(char)
        t = self.timestamps
        presses = np.asarray(presses, dtype=np.float64)
        inside = (presses >= t[0]) & (presses <= t[-1])
        if not inside.all():
            warnings.warn(
                f"{self.path}: {int((~inside).sum())} keystroke(s) outside the recording "
                f"({t[0]:.3f}-{t[-1]:.3f} s) dropped",
                stacklevel=2,
            )
        index = np.searchsorted(t, presses[inside])
        return index.astype(np.int64), "".join(c for c, i in zip(chars, inside, strict=True) if i)

    def text(self, start_t: float, end_t: float) -> str:
        """Label string of the keys pressed in [start_t, end_t) (unix seconds)."""
        return CHARSET.keys_to_text(
            [k["key"] for k in self.keystrokes if start_t <= k["start"] < end_t]
        )


@dataclass(frozen=True)
class Split:
    """Session paths of one split file; ``user`` is the file's top-level label
    (``generic``, ``user0`` ... in emg2qwerty), not a user id: ``test_users`` gives those."""

    name: str
    user: str
    train: list[Path]
    val: list[Path]
    test: list[Path]

    @property
    def test_users(self) -> list[str]:
        return sorted({Session(p).user for p in self.test})


def load_split(data_dir: str | Path, name: str) -> Split:
    """``DATA/splits/<name>.yaml`` (emg2qwerty's config/user layout) -> session paths."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    path = root / "splits" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (root / "splits").glob("*.yaml"))
        raise FileNotFoundError(f"split {name!r}: no {path}; splits here: {known}")
    spec = yaml.safe_load(path.read_text()) or {}
    dataset = spec.get("dataset")
    if not isinstance(dataset, dict):
        raise ValueError(f"{path}: no 'dataset' mapping with train/val/test lists")
    parts, absent = {}, []
    for part in ("train", "val", "test"):
        entries = dataset.get(part) or []
        paths = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "session" not in entry:
                raise ValueError(f"{path}: dataset.{part}[{i}] has no 'session' field")
            session = root / f"{entry['session']}.hdf5"
            if not session.is_file():
                absent.append(f"dataset.{part}[{i}] -> {session}")
            paths.append(session)
        parts[part] = paths
    if absent:
        shown = "; ".join(absent[:SHOW_MISSING]) + ("; ..." if len(absent) > SHOW_MISSING else "")
        raise FileNotFoundError(f"{path}: {len(absent)} missing session file(s): {shown}")
    return Split(name=name, user=str(spec.get("user", name)), **parts)


def personal_splits(data_dir: str | Path) -> dict[str, str]:
    """Test user id -> the name of their personalized split (``user0`` ... in emg2qwerty).

    Keyed by the user ids of the sessions each ``splits/user*.yaml`` lists, since the file's
    own top-level ``user`` is a label (``user: user0`` in the real files)."""
    out: dict[str, str] = {}
    for path in sorted((Path(data_dir) / "splits").glob("user*.yaml")):
        dataset = (yaml.safe_load(path.read_text()) or {}).get("dataset")
        if not isinstance(dataset, dict):
            raise ValueError(f"{path}: no 'dataset' mapping with train/val/test lists")
        for part in ("train", "val", "test"):
            for i, entry in enumerate(dataset.get(part) or []):
                if not isinstance(entry, dict) or "user" not in entry:
                    raise ValueError(f"{path}: dataset.{part}[{i}] has no 'user' field")
                user = str(entry["user"])
                if out.setdefault(user, path.stem) != path.stem:
                    raise ValueError(f"{path}: user {user} also has split {out[user]!r}")
    return out


def typed_sessions(paths: Sequence[Path]) -> list[Session]:
    """Open sessions, skipping (with a warning that says why) those without typed ground truth.

    emg2qwerty's keystrokes are ground truth only for the ``on_keyboard`` condition."""
    sessions = []
    for p in paths:
        s = Session(p)
        if s.condition != TYPED_CONDITION:
            warnings.warn(
                f"{p}: skipped, condition {s.condition!r} has no typed ground truth",
                stacklevel=2,
            )
            continue
        sessions.append(s)
    return sessions


Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class WindowedDataset(Dataset):
    """Windows of ``past + window + future`` samples; labels are the keys pressed in the window.

    Training draws a random offset per item from a generator seeded by (seed, epoch, index),
    so an epoch's windows are a pure function of the seed: resumed runs see the same data.
    Evaluation tiles each session with stride ``stride`` (default ``window``).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        window: int,
        past: int = 0,
        future: int = 0,
        train: bool = False,
        transform: Transform | None = None,
        seed: int = 0,
        stride: int | None = None,
    ) -> None:
        if window <= 0 or past < 0 or future < 0:
            raise ValueError(f"window={window}, past={past}, future={future}: need window > 0")
        self.sessions = typed_sessions(paths)
        if not self.sessions:
            raise ValueError("WindowedDataset: no sessions with typed ground truth")
        self.window, self.past, self.future = window, past, future
        self.train, self.transform, self.seed = train, transform, seed
        self.epoch = 0
        self.events = [
            (p, np.array(list(c), dtype=object)) for p, c in map(Session.key_events, self.sessions)
        ]
        self.items: list[tuple[int, int]] = []  # (session, start of the central window)
        step = stride or window
        for i, s in enumerate(self.sessions):
            self.items += [(i, start) for start in range(0, max(1, len(s) - window + 1), step)]

    def __len__(self) -> int:
        return len(self.items)

    def user(self, index: int) -> str:
        return self.sessions[self.items[index][0]].user

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, start = self.items[index]
        session = self.sessions[i]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.train:
            start = int(rng.integers(0, max(1, len(session) - self.window + 1)))
        lo, hi = start - self.past, start + self.window + self.future
        emg = session.emg[max(lo, 0) : min(hi, len(session))]
        emg = np.pad(emg, ((max(-lo, 0), max(hi - len(session), 0)), (0, 0), (0, 0)))
        if self.transform is not None:
            emg = self.transform(emg, rng)
        press, chars = self.events[i]
        inside = (press >= start) & (press < start + self.window)
        labels = CHARSET.text_to_labels("".join(chars[inside]))
        return torch.from_numpy(np.ascontiguousarray(emg)), torch.tensor(labels, dtype=torch.long)


def collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad a list of (emg, labels) into the dict every objective and model consumes."""
    emgs, labels = zip(*batch, strict=True)
    return {
        "emg": torch.nn.utils.rnn.pad_sequence(list(emgs), batch_first=True),
        "input_lengths": torch.tensor([len(e) for e in emgs], dtype=torch.long),
        "targets": torch.nn.utils.rnn.pad_sequence(list(labels), batch_first=True),
        "target_lengths": torch.tensor([len(t) for t in labels], dtype=torch.long),
    }
