"""Augmentations of (T, 2, 16) sEMG windows, from the paper's recipe (section 3.1).

Each is a callable ``(emg, rng) -> emg`` on numpy arrays, so a dataset can draw them
from its own seeded generator. Time masking lives in the model (it acts on frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BandRotation:
    """Rotate each band's 16 electrodes by one of ``offsets``: a band donned a little
    turned around the forearm looks exactly like this."""

    offsets: Sequence[int] = (-1, 0, 1)

    def __call__(self, emg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        shifts = rng.choice(np.asarray(self.offsets), size=emg.shape[1])
        out = np.empty_like(emg)
        n = emg.shape[-1]
        for b, s in enumerate(shifts):  # np.roll by slices: one copy, no temporaries
            s = int(s) % n
            out[:, b, s:] = emg[:, b, : n - s]
            out[:, b, :s] = emg[:, b, n - s :]
        return out


@dataclass(frozen=True)
class BandJitter:
    """Shift the right band against the left by up to ``max_samples`` (zero-filled):
    the two wristbands are not perfectly synchronised."""

    max_samples: int = 120

    def __call__(self, emg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return lag_right_band(emg, int(rng.integers(-self.max_samples, self.max_samples + 1)))


def lag_right_band(emg: np.ndarray, shift: int) -> np.ndarray:
    """``emg`` with the right band ``shift`` samples later (earlier if negative), zero-filled."""
    out = emg.copy()  # one contiguous copy, then the right band shifted in place
    right, source, t = out[:, 1], emg[:, 1], len(emg)
    k = min(abs(shift), t)
    if shift >= 0:
        right[k:] = source[: t - k]
        right[:k] = 0
    else:
        right[: t - k] = source[k:]
        right[t - k :] = 0
    return out


@dataclass(frozen=True)
class Compose:
    transforms: Sequence

    def __call__(self, emg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            emg = t(emg, rng)
        return emg


def paper_augmentation() -> Compose:
    """Band rotation by -1/0/+1 electrodes and up to 120 samples of band jitter."""
    return Compose([BandRotation(), BandJitter(120)])
