"""Reading emg2pose stage files and splits, and cutting them into training windows.

One reader serves the real dataset (its mini set and full release) and the synthetic pose
corpus (:mod:`semgkit.synth_pose`), both in emg2pose's layout (:mod:`semgkit.pose_format`).
Like the typing reader, a :class:`PoseSession` keeps attributes and a compact list of the
runs free of inverse-kinematics (IK) failures in memory and reads each window from disk.

A stage holds one wrist. Its 16 electrodes are placed in the band of its side in the
``(T, 2, 16)`` signal every encoder takes (band 0 = left, as for emg2qwerty), the other band
zero, so the typing encoders serve this task unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import yaml

from semgkit.data import split_entry
from semgkit.format import ELECTRODES
from semgkit.h5files import RecordFile, file_stamp
from semgkit.pose_format import (
    EMG,
    GROUP,
    JOINT_ANGLES,
    METADATA_COLUMNS,
    NUM_JOINTS,
    PARTS,
    SIDES,
    TIMESERIES,
    attr_texts,
    stage_problem,
)
from semgkit.windows import SessionWindows, Transform, pad

SHIPPED_SPLITS = Path(__file__).resolve().parent / "assets"
SCAN_ROWS = 1 << 16  # samples read at a time when a session's IK failures are first found


def ik_ok(angles: np.ndarray) -> np.ndarray:
    """True where a sample's angles are not all zero: emg2pose's test for an IK failure,
    ``np.isclose(angles, 0).all(-1)``, which for zero is ``|angle| <= 1e-8`` (its atol)."""
    return ~(np.abs(angles) <= 1e-8).all(axis=-1)


class PoseSession(RecordFile):
    """One emg2pose stage file: attributes in memory, the signal and angles on disk."""

    GROUP = GROUP
    DATASET = TIMESERIES

    def __init__(self, path: str | Path) -> None:
        raw = self._open(path, lambda group: dict(group.attrs))
        self.attrs = attr_texts(raw)
        problem = stage_problem(self._dtype, self.attrs, self._length)
        if problem:
            raise ValueError(f"{self.path}: {problem}")
        self.user, self.session_name = self.attrs["user"], self.attrs["session"]
        self.side, self.stage = self.attrs["side"], self.attrs.get("stage", "")
        self.band = SIDES.index(self.side)
        self._stamp = file_stamp(self.path)

    def read(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Samples ``lo:hi``: sEMG (n, 2, 16) float32 in its side's band, angles (n, 20)
        float32 radians, and the no-IK-failure mask (n,); samples outside the stage are
        zeros with a False mask (a window's context at the edges)."""
        a, b = min(max(lo, 0), len(self)), max(min(hi, len(self)), 0)
        part = self._read(slice(a, max(a, b)))
        emg = np.zeros((hi - lo, 2, ELECTRODES), dtype=np.float32)
        angles = np.zeros((hi - lo, NUM_JOINTS), dtype=np.float32)
        inside = slice(a - lo, a - lo + len(part))
        emg[inside, self.band] = part[EMG]
        angles[inside] = part[JOINT_ANGLES]
        if not (np.isfinite(emg[:, self.band]).all() and np.isfinite(angles).all()):
            raise ValueError(f"{self.path}: non-finite samples in {lo}:{hi}")
        return emg, angles, self.ik_mask(lo, hi)

    def ik_mask(self, lo: int, hi: int) -> np.ndarray:
        """(hi - lo,) True on samples without an IK failure, from :attr:`valid_runs` (found
        once) rather than the angles again: a third of a window's read time saved."""
        mask = np.zeros(hi - lo, dtype=bool)
        first = int(np.searchsorted(self._run_ends, lo, side="right"))
        for start, end in self.valid_runs[first:]:
            if start >= hi:
                break
            mask[max(start, lo) - lo : min(end, hi) - lo] = True
        return mask

    @cached_property
    def _run_ends(self) -> np.ndarray:
        return np.array([end for _, end in self.valid_runs], dtype=np.int64)

    @cached_property
    def valid_runs(self) -> list[tuple[int, int]]:
        """``[start, end)`` of each run of samples without an IK failure, found by reading
        the angles a block at a time (the only whole-stage read, once per session)."""
        runs: list[tuple[int, int]] = []
        for lo in range(0, len(self), SCAN_ROWS):
            ok = ik_ok(self._read(slice(lo, min(lo + SCAN_ROWS, len(self))), JOINT_ANGLES))
            edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
            for start, end in zip(edges[::2] + lo, edges[1::2] + lo, strict=True):
                if runs and runs[-1][1] == start:  # a run across the block boundary
                    runs[-1] = (runs[-1][0], int(end))
                else:
                    runs.append((int(start), int(end)))
        return runs


@dataclass(frozen=True)
class PoseSplit:
    """File paths of one pose split (emg2pose's ``config/data_split`` layout)."""

    name: str
    train: list[Path]
    val: list[Path]
    test: list[Path]


def read_metadata(data_dir: str | Path) -> list[dict[str, str]]:
    """``metadata.csv``'s rows; an error names the file and a missing column."""
    path = Path(data_dir) / "metadata.csv"
    with path.open(newline="", encoding="utf-8-sig") as f:  # a BOM is not a column name
        rows = list(csv.DictReader(f))
    header = set(rows[0]) if rows else set()
    for column in ("filename", "split"):
        if column not in header:
            raise ValueError(f"{path}: no column {column!r} (emg2pose has {METADATA_COLUMNS})")
    return rows


def load_pose_split(data_dir: str | Path, name: str) -> PoseSplit:
    """Split ``name``: ``DATA/splits/<name>.yaml`` or a shipped one (``mini``), each listing
    file names under train/val/test; ``full`` is metadata.csv's ``split`` column, as
    emg2pose's ``full_split`` reads it. Every listed file must be present."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    if name == "full":
        rows = read_metadata(root)
        parts = {p: [r["filename"] for r in rows if r["split"] == p] for p in PARTS}
        source = root / "metadata.csv"
    else:
        source = root / "splits" / f"{name}.yaml"
        if not source.is_file():
            source = SHIPPED_SPLITS / f"pose_split_{name}.yaml"
        if not source.is_file():
            known = sorted(p.stem for p in (root / "splits").glob("*.yaml"))
            raise FileNotFoundError(
                f"pose split {name!r}: no {root / 'splits' / name}.yaml; "
                f"splits here: {known}, shipped: ['mini'], or 'full'"
            )
        spec = yaml.safe_load(source.read_text()) or {}
        if not isinstance(spec, dict) or not all(isinstance(spec.get(p, []), list) for p in PARTS):
            raise ValueError(f"{source}: needs lists of file names under {list(PARTS)}")
        parts = {p: [str(n) for n in spec.get(p) or []] for p in PARTS}
    seen: dict[str, str] = {}
    paths = {
        p: [
            split_entry(f"{source}: {p}[{i}]", n, p, seen, root, "file")
            for i, n in enumerate(names)
        ]
        for p, names in parts.items()
    }
    absent = [str(f) for p in PARTS for f in paths[p] if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"{source}: {len(absent)} missing pose file(s): {absent[:3]}")
    return PoseSplit(name=name, **paths)


class PoseWindows(SessionWindows):
    """Windows of ``past + window + future`` samples with the angles and IK mask of each.

    With ``skip_ik_failures`` (emg2pose's default) windows lie inside runs without an IK
    failure at least ``window`` long; without it they tile the whole stage and the mask
    alone keeps failures out of the loss. Training draws a random start in its run from a
    generator seeded by (seed, epoch, index), as :class:`semgkit.windows.WindowedDataset` does.
    The mask is False outside the central window: context is never scored. ``transform``
    acts on the sEMG only (a band rotation leaves the pose as it is)."""

    def __init__(
        self,
        paths: Sequence[Path],
        window: int,
        past: int = 0,
        future: int = 0,
        train: bool = False,
        seed: int = 0,
        stride: int | None = None,
        skip_ik_failures: bool = True,
        transform: Transform | None = None,
    ) -> None:
        if window <= 0 or past < 0 or future < 0:
            raise ValueError(f"window={window}, past={past}, future={future}: need window > 0")
        self.sessions = [PoseSession(p) for p in paths]
        self.window, self.past, self.future = window, past, future
        self.train, self.seed, self.epoch, self.transform = train, seed, 0, transform
        step = stride or window
        self.items: list[tuple[int, int, int, int]] = []  # session, run start, run end, start
        for i, s in enumerate(self.sessions):
            runs = s.valid_runs if skip_ik_failures else [(0, len(s))]
            for lo, hi in runs:
                last = hi - window if skip_ik_failures else max(lo, hi - window)
                self.items += [(i, lo, hi, start) for start in range(lo, last + 1, step)]
        if not self.items:
            raise ValueError(f"PoseWindows: no window of {window} samples without IK failures")

    def stage(self, index: int) -> str:
        """The stage file (its name) item ``index`` comes from."""
        return self.sessions[self.items[index][0]].path.stem

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, ...]:
        """(emg, angles, mask) of item ``index`` (or ``(epoch, index)``, from a worker)."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        i, run_lo, run_hi, start = self.items[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.train:
            start = int(rng.integers(run_lo, max(run_lo, run_hi - self.window) + 1))
        lo, hi = start - self.past, start + self.window + self.future
        emg, angles, mask = self.sessions[i].read(lo, hi)
        if self.transform is not None:
            emg = np.ascontiguousarray(self.transform(emg, rng))
        mask[: self.past] = False
        mask[len(mask) - self.future :] = False
        return torch.from_numpy(emg), torch.from_numpy(angles), torch.from_numpy(mask)


def pose_collate(batch: Sequence[tuple[torch.Tensor, ...]]) -> dict[str, torch.Tensor]:
    """Pad (emg, angles, mask) items into a batch; padding is masked out."""
    emgs, angles, masks = zip(*batch, strict=True)
    return {
        "emg": pad(emgs),
        "input_lengths": torch.tensor([len(e) for e in emgs], dtype=torch.long),
        "angles": pad(angles),
        "mask": pad(masks),
    }
