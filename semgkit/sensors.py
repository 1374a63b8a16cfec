"""Simulated other sensors, as `semgkit.perturb` steps the models accept at (T, 2, 16).

A model trained on one band sees another sensor's signal through its input shape, so each
sensor here maps a 16-electrode recording to what the other sensor would feed the model:

* ``mirror``: each band worn the other way round the forearm, so the electrode order
  around it is reversed (electrode ``i`` reads what electrode ``-i mod 16`` read). It is a
  reflection, not a rotation: training's +-1 rotations do not cover it.
* ``sparse:n=8``: a band of ``n`` electrodes per band (``n`` divides 16), evenly spaced on
  the 16 positions 0, 16/n, ...; the positions between two electrodes are filled by linear
  interpolation around the band's circle, the simplest resampling to the model's 16 inputs.

Both are the same for every sample (no draws, no dependence on the signal's power), so a
window, a block of a session and a whole session are transformed alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from semgkit.format import ELECTRODES


@dataclass(frozen=True)
class Mirror:
    """Both bands worn the other way round: electrode ``i`` reads electrode ``-i mod 16``."""

    def __call__(self, emg: np.ndarray, ctx: Any) -> np.ndarray:
        return emg[..., (-np.arange(ELECTRODES)) % ELECTRODES]


@dataclass(frozen=True)
class Sparse:
    """A band of ``n`` electrodes at positions ``k * 16 / n``, linearly interpolated back
    to the 16 positions the models read (``n = 16``: the identity)."""

    n: int

    def __post_init__(self) -> None:
        if not 1 <= self.n <= ELECTRODES or ELECTRODES % self.n:
            raise ValueError(f"n={self.n}: electrodes per band must divide {ELECTRODES}")

    def weights(self) -> np.ndarray:
        """(16 kept positions, 16 model inputs): input ``p`` mixes its two electrodes."""
        step = ELECTRODES // self.n
        out = np.zeros((ELECTRODES, ELECTRODES), dtype=np.float32)
        for p in range(ELECTRODES):
            below, frac = divmod(p, step)
            out[below * step, p] += 1 - frac / step
            out[((below + 1) % self.n) * step, p] += frac / step
        return out

    def __call__(self, emg: np.ndarray, ctx: Any) -> np.ndarray:
        return emg @ self.weights()
