"""Windows over sessions for training and evaluation: the dataset every CTC run reads and
the collate that pads a batch into the dict the objectives and models consume."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from semgkit.data import typed_sessions

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class SessionWindows(Dataset):
    """Items over ``sessions``, each a tuple whose first entry is its session's index; the
    epoch (``set_epoch``) seeds a training item's random draw."""

    sessions: list
    items: list[tuple[int, ...]]
    epoch: int = 0

    def __len__(self) -> int:
        return len(self.items)

    def user(self, index: int) -> str:
        return self.sessions[self.items[index][0]].user

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class WindowedDataset(SessionWindows):
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
        for s in self.sessions:
            s.key_events()  # read each time column once, here, not in a worker
        self.items: list[tuple[int, int]] = []  # (session, start of the central window)
        step = stride or window
        for i, s in enumerate(self.sessions):
            self.items += [(i, start) for start in range(0, max(1, len(s) - window + 1), step)]

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item ``index`` of the current epoch, or of ``epoch`` given as ``(epoch, index)``
        (what a DataLoader worker receives: it cannot see ``set_epoch`` calls)."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        i, start = self.items[index]
        session = self.sessions[i]
        rng = np.random.default_rng([self.seed, epoch, index])
        if self.train:
            start = int(rng.integers(0, max(1, len(session) - self.window + 1)))
        lo, hi = start - self.past, start + self.window + self.future
        emg = session.window(lo, hi)
        if self.transform is not None:
            emg = self.transform(emg, rng)
        labels = torch.from_numpy(session.labels(start, start + self.window).copy())
        return torch.from_numpy(np.ascontiguousarray(emg)), labels


def collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad a list of (emg, labels) into the dict every objective and model consumes."""
    emgs, labels = zip(*batch, strict=True)
    return {
        "emg": pad(emgs),
        "input_lengths": torch.tensor([len(e) for e in emgs], dtype=torch.long),
        "targets": pad(labels),
        "target_lengths": torch.tensor([len(t) for t in labels], dtype=torch.long),
    }


def pad(items: Sequence[torch.Tensor]) -> torch.Tensor:
    """Zero-padded stack along a new first axis (``pad_sequence``, which is several times
    slower on large windows). In a DataLoader worker the stack is built in shared memory,
    as torch's own collate does, so it reaches the main process without another copy."""
    shape = (len(items), max(len(x) for x in items), *items[0].shape[1:])
    if get_worker_info() is None:
        out = items[0].new_empty(shape)
    else:
        storage = items[0]._typed_storage()._new_shared(math.prod(shape))
        out = items[0].new(storage).view(shape)
    for row, x in zip(out, items, strict=True):
        row[: len(x)] = x
        row[len(x) :] = 0
    return out
