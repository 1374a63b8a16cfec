"""Reading emg2qwerty sessions and splits (the windows cut from them are `semgkit.windows`).

One reader serves the real dataset and the synthetic corpus, since both are written in
emg2qwerty's layout: an HDF5 file per session (group ``emg2qwerty``, compound dataset
``timeseries`` with ``emg_left``, ``emg_right``, ``time``; keystrokes and prompts as JSON
attributes) and split files listing ``{user, session}`` under ``dataset.train|val|test``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from semgkit.charset import CHARSET
from semgkit.format import ATTRS, ELECTRODES, FIELDS, GROUP
from semgkit.format import TIMESERIES as DATASET
from semgkit.h5files import RecordFile, file_stamp

SHOW_MISSING = 5  # a split naming many absent sessions shows the first few and the count
TYPED_CONDITION = "on_keyboard"  # keystrokes are ground truth only when typed on a keyboard
KEYSTROKE_FIELDS = {"key": "text", "start": "number"}  # what semgkit reads of a keystroke


class Session(RecordFile):
    """One emg2qwerty session file: metadata and key events in memory, the signal on disk.

    Opening validates the layout and reads only the attributes it needs. ``window(lo, hi)``
    reads one slice of the signal; ``emg`` and ``timestamps`` read the whole series on
    every access (the expensive path, for inspection and tests; training never uses them).
    Handles come from a small per-process cache, so a Session pickles and forks cheaply.
    """

    GROUP = GROUP

    def __init__(self, path: str | Path) -> None:
        attrs, present = self._open(
            path, lambda g: ({a: g.attrs[a] for a in ATTRS[:3] if a in g.attrs}, set(g.attrs))
        )
        dtype = self._dtype
        names = dtype.names or ()
        missing = [n for n in FIELDS if n not in names] + [a for a in ATTRS if a not in present]
        if missing:
            raise ValueError(f"{self.path}: not an emg2qwerty session, missing {missing}")
        check_fields(self.path, dtype, self._length)
        self.session_name = str(attrs["session_name"])
        self.user = str(attrs["user"])
        self.condition = str(attrs["condition"])
        self._stamp = file_stamp(self.path)

    def window(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo:hi`` as float32 (hi - lo, 2, 16), band 0 = left; samples outside the
        session are zeros (a window's context at the edges). One copy from the file's
        records into the result: this is the hot path of training."""
        a, b = min(max(lo, 0), len(self)), max(min(hi, len(self)), 0)
        part = self._read(slice(a, max(a, b)))
        emg = np.zeros((hi - lo, 2, ELECTRODES), dtype=np.float32)
        emg[a - lo : a - lo + len(part), 0] = part["emg_left"]
        emg[a - lo : a - lo + len(part), 1] = part["emg_right"]
        if not np.isfinite(emg).all():
            first = lo + int(np.argwhere(~np.isfinite(emg))[0][0])
            raise ValueError(f"{self.path}: non-finite sEMG samples (first at sample {first})")
        return emg

    @property
    def emg(self) -> np.ndarray:
        """(T, 2, 16) float32, band 0 = left wrist: the whole session, read on every access."""
        return self.window(0, len(self))

    @property
    def timestamps(self) -> np.ndarray:
        """Sample times (unix seconds) of the whole session, read on every access."""
        t = self._read(slice(None), "time")
        if not np.isfinite(t).all():
            first = int(np.argmax(~np.isfinite(t)))
            raise ValueError(f"{self.path}: field time is {t[first]} at sample {first}")
        steps = np.diff(t)
        if (steps < 0).any():  # a repeated timestamp is fine: emg2qwerty allows it too
            first = int(np.argmax(steps < 0)) + 1
            raise ValueError(f"{self.path}: field time goes backwards at sample {first}")
        self._check_span(t[0], t[-1])
        return t

    def _check_span(self, first: float, last: float) -> None:
        """A session must last: a constant (or NaN) time column gives no sample rate."""
        if not (np.isfinite(first) and np.isfinite(last) and last > first):
            raise ValueError(
                f"{self.path}: field time does not increase ({first} at the first sample, "
                f"{last} at the last); not a recording"
            )

    @cached_property
    def sample_rate(self) -> float:
        ends = self._read(slice(0, len(self), max(len(self) - 1, 1)), "time")
        self._check_span(float(ends[0]), float(ends[-1]))
        return float((len(self) - 1) / (ends[-1] - ends[0]))

    def _json(self, name: str, fields: dict[str, str]) -> list[dict]:
        return json_list(self.path, self._group().attrs, name, fields)

    @property
    def keystrokes(self) -> list[dict]:
        """emg2qwerty's keystroke records, parsed from the file on every access."""
        return self._json("keystrokes", KEYSTROKE_FIELDS)

    @property
    def prompts(self) -> list[dict]:
        """emg2qwerty's prompt records, parsed from the file on every access."""
        return self._json("prompts", {})

    @cached_property
    def _events(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sample index, that sample's time, class label) of each key, by sample index."""
        keys = [(k["start"], CHARSET.key_to_char(k["key"])) for k in self.keystrokes]
        keys = [(start, char) for start, char in keys if char is not None]
        presses = np.array([start for start, _ in keys], dtype=np.float64)
        labels = np.array(CHARSET.text_to_labels("".join(c for _, c in keys)), dtype=np.int64)
        t = self.timestamps
        inside = (presses >= t[0]) & (presses <= t[-1])
        if not inside.all():
            warnings.warn(
                f"{self.path}: {int((~inside).sum())} keystroke(s) outside the recording "
                f"({t[0]:.3f}-{t[-1]:.3f} s) dropped",
                stacklevel=3,
            )
        index = np.searchsorted(t, presses[inside])
        order = np.argsort(index, kind="stable")
        index = index[order].astype(np.int64)
        return index, t[index], labels[inside][order]

    def key_events(self) -> tuple[np.ndarray, str]:
        """(sample index of each press, label string), keys outside the charset dropped.

        The one labelling rule, shared by ``labels``, ``text`` and ``WindowedDataset``: a
        key belongs to the first sample at or after its press, and the samples
        ``[start, end)`` are labelled with the keys that belong to them, i.e. those pressed
        in ``(t[start - 1], t[end - 1]]``. emg2qwerty labels a window with the keys pressed
        in the inclusive span ``[t[start], t[end - 1]]``: the same keys, except one pressed
        between the last sample of a window and the first of the next, which emg2qwerty
        loses and this rule gives to the later window. Keys pressed outside the recording
        are dropped with a warning. Computed once (reading the time column), then kept."""
        index, _, labels = self._events
        return index.copy(), CHARSET.labels_to_text(labels.tolist())

    def labels(self, start: int, end: int) -> np.ndarray:
        """Class labels of the keys that belong to samples ``[start, end)``."""
        index, _, labels = self._events
        lo, hi = np.searchsorted(index, [start, end])
        return labels[lo:hi]

    def text(self, start_t: float, end_t: float) -> str:
        """Label string of the keys whose sample time lies in ``[start_t, end_t)`` (unix
        seconds); for ``start_t, end_t = t[start], t[end]`` the keys of ``labels(start, end)``."""
        _, times, labels = self._events
        lo, hi = np.searchsorted(times, [start_t, end_t])
        return CHARSET.labels_to_text(labels[lo:hi].tolist())


def check_fields(path: Path, dtype: np.dtype, samples: int) -> None:
    """Refuse fields that are not numbers of the expected shape, and series too short to
    give a sample rate. Integer sEMG (raw ADC counts) is read as float32 unscaled, with a
    warning: emg2qwerty stores floats, and a model trained on those sees another scale."""
    for band in FIELDS[:2]:
        base = dtype[band].base
        if base.kind not in "fiu":
            raise ValueError(f"{path}: field {band} holds {base} values, not numbers")
        if dtype[band].shape != (ELECTRODES,):
            raise ValueError(
                f"{path}: field {band} has shape {dtype[band].shape} per sample, "
                f"expected ({ELECTRODES},)"
            )
    if any(dtype[band].base.kind != "f" for band in FIELDS[:2]):
        warnings.warn(
            f"{path}: field emg_left is {dtype['emg_left'].base} (emg_right "
            f"{dtype['emg_right'].base}): read as float32 without scaling (emg2qwerty stores "
            "floating-point sEMG)",
            stacklevel=3,
        )
    if dtype["time"].kind != "f" or dtype["time"].shape != ():
        raise ValueError(f"{path}: field time holds {dtype['time']} values, not float seconds")
    if samples < 2:
        raise ValueError(f"{path}: {DATASET} has {samples} sample(s); a session needs at least 2")


def json_list(path: Path, attrs: dict, name: str, fields: dict[str, str]) -> list[dict]:
    """Attribute ``name``, a JSON list of objects, each with ``fields`` (name -> "text" or
    "number"); errors name the file and the attribute."""
    try:
        value = json.loads(attrs[name])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: attribute {name} is not valid JSON ({err})") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{path}: attribute {name} must be a JSON list of objects")
    for i, item in enumerate(value):
        for key, kind in fields.items():
            v = item.get(key)
            number = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            if not (isinstance(v, str) if kind == "text" else number):
                raise ValueError(f"{path}: attribute {name}[{i}] {key!r} is not a {kind}: {v!r}")
    return value


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
    spec = yaml_mapping(path)
    dataset = split_dataset(path, spec)
    parts, absent, seen = {}, [], {}
    for part in ("train", "val", "test"):
        entries = dataset.get(part) or []
        if not isinstance(entries, list):
            raise ValueError(f"{path}: dataset.{part} is not a list of sessions")
        paths = []
        for i, entry in enumerate(entries):
            where = f"{path}: dataset.{part}[{i}]"
            if not isinstance(entry, dict) or "session" not in entry:
                raise ValueError(f"{where} has no 'session' field")
            file = split_entry(where, str(entry["session"]), part, seen, root)
            if not file.is_file():
                absent.append(f"{where} -> {file}")
            paths.append(file)
        parts[part] = paths
    if absent:
        shown = "; ".join(absent[:SHOW_MISSING]) + ("; ..." if len(absent) > SHOW_MISSING else "")
        raise FileNotFoundError(f"{path}: {len(absent)} missing session file(s): {shown}")
    return Split(name=name, user=str(spec.get("user", name)), **parts)


def split_entry(
    where: str, name: str, part: str, seen: dict[str, str], root: Path, noun: str = "session"
) -> Path:
    """``root/<name>.hdf5`` for an entry of a split's ``part``: a plain file name, so a
    shared split file cannot make us read outside the corpus, and in one part only
    (``seen``: name -> part so far), so nothing is tested on what it trained on."""
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        raise ValueError(f"{where}: {noun} {name!r} is not a file name in {root}")
    if seen.setdefault(name, part) != part:
        raise ValueError(
            f"{where}: {noun} {name!r} is also in {seen[name]}; a {noun} belongs to one part "
            "of a split"
        )
    return root / f"{name}.hdf5"


def yaml_mapping(path: Path) -> dict:
    """A YAML file's top-level mapping ({} if empty); a file that is not YAML, or not a
    mapping, is an error naming it."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a YAML split file ({first})") from None
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: not a split file (a YAML {type(spec).__name__}, not a mapping)")
    return spec


def split_dataset(path: Path, spec: dict | None = None) -> dict:
    """The ``dataset`` mapping (train/val/test lists) of a split file (``spec``: its
    contents when already read)."""
    dataset = (yaml_mapping(path) if spec is None else spec).get("dataset")
    if not isinstance(dataset, dict):
        raise ValueError(f"{path}: no 'dataset' mapping with train/val/test lists")
    return dataset


def personal_splits(data_dir: str | Path) -> dict[str, str]:
    """Test user id -> the name of their personalized split (``user0`` ... in emg2qwerty).

    Keyed by the user ids of the sessions each ``splits/user*.yaml`` lists, since the file's
    own top-level ``user`` is a label (``user: user0`` in the real files)."""
    out: dict[str, str] = {}
    for path in sorted((Path(data_dir) / "splits").glob("user*.yaml")):
        dataset = split_dataset(path)
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
