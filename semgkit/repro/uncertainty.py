"""How sure a CER is: a bootstrap interval from the test set and the seed spread.

A CER measured once says nothing about how much it would move on other test users or
with another training seed, and on a laptop corpus both move it by several points. The
interval resamples the test *groups* (users or sessions) with replacement and pools the
edits of each resample, as the CER itself is pooled; the seed spread is the range of the
per-seed CERs. Claims are judged on both in :mod:`semgkit.repro.claims`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Monte Carlo error of the bounds, 8 groups with CERs of 40-90 %, sd over 20 bootstrap
# seeds: 0.13 / 0.19 points (lower / upper) at 10000 resamples, 0.26 / 0.44 at 2000.
RESAMPLES = 10000
LEVEL = 0.95


def bootstrap_interval(
    edits: Sequence[float],
    chars: Sequence[float],
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval (in %) of the pooled CER over groups of the test set.

    ``edits[i]`` and ``chars[i]`` are group i's edit count and ground-truth characters.
    Each resample draws as many groups as there are, with replacement, and pools them."""
    e, c = np.asarray(edits, dtype=float), np.asarray(chars, dtype=float)
    if e.ndim != 1 or e.shape != c.shape:
        raise ValueError(f"edits {e.shape} and chars {c.shape} must be 1-D of one length")
    if len(e) < 2:
        raise ValueError(f"a bootstrap needs at least 2 groups, got {len(e)}")
    if (e < 0).any() or (c < 0).any() or c.sum() == 0:
        raise ValueError("edits and chars must be non-negative with some characters")
    if not 0 < level < 1:
        raise ValueError(f"level {level}: choose a coverage between 0 and 1")
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: need at least 1")
    draws = np.random.default_rng(seed).integers(0, len(e), size=(resamples, len(e)))
    with np.errstate(invalid="ignore", divide="ignore"):
        cer = 100.0 * e[draws].sum(1) / c[draws].sum(1)
    tail = 50.0 * (1 - level)
    lo, hi = np.nanpercentile(cer, [tail, 100 - tail], method="inverted_cdf")
    return float(lo), float(hi)


@dataclass(frozen=True)
class Estimate:
    """A CER pooled over groups and seeds, its 95 % interval and the per-seed range."""

    cer: float
    lo: float  # NaN when there are fewer than 2 groups to resample
    hi: float
    seed_range: float  # max - min over seeds; NaN with one seed
    seeds: int

    @property
    def spread(self) -> float:
        return 0.0 if math.isnan(self.seed_range) else self.seed_range


def estimate(per_seed: Sequence[Mapping[str, Mapping[str, float]]]) -> Estimate:
    """One row of a table from per-seed counts: ``[{group: {"edits": e, "chars": c}}]``.

    Every seed must be scored on the same groups. The interval resamples groups of the
    edits summed over seeds, so with several seeds it is the interval of their mean."""
    if not per_seed:
        raise ValueError("estimate: no seeds")
    groups = sorted(per_seed[0])
    if any(sorted(s) != groups for s in per_seed):
        raise ValueError("estimate: every seed must be scored on the same groups")
    edits = np.array([[s[g]["edits"] for g in groups] for s in per_seed], dtype=float)
    chars = np.array([[s[g]["chars"] for g in groups] for s in per_seed], dtype=float)
    by_seed = 100.0 * edits.sum(1) / chars.sum(1)
    lo, hi = (math.nan, math.nan)
    if len(groups) > 1:
        lo, hi = bootstrap_interval(edits.sum(0), chars.sum(0))
    seed_range = float(by_seed.max() - by_seed.min()) if len(by_seed) > 1 else math.nan
    return Estimate(100.0 * edits.sum() / chars.sum(), lo, hi, seed_range, len(by_seed))


def columns(measure: str, e: Estimate, unit: str = "CER %") -> dict[str, float]:
    """Table columns for one measure: ``<measure> <unit>``, its interval and seed range."""
    return {
        f"{measure} {unit}": round(e.cer, 2),
        f"{measure} CI95 lo": round(e.lo, 2),
        f"{measure} CI95 hi": round(e.hi, 2),
        f"{measure} seed range": round(e.seed_range, 2),
    }


def from_row(row: Mapping[str, float], measure: str, unit: str = "CER %") -> Estimate:
    """The :class:`Estimate` of a table row written by :func:`columns`."""
    seeds = int(row.get("seeds", 1))
    return Estimate(
        float(row[f"{measure} {unit}"]),
        float(row[f"{measure} CI95 lo"]),
        float(row[f"{measure} CI95 hi"]),
        float(row[f"{measure} seed range"]),
        seeds,
    )


def error_bars(rows: Sequence[Estimate]) -> tuple[list[float], list[float]]:
    """Plotly's ``error_y`` arrays (above, below) of each estimate; 0 where unknown."""
    above = [0.0 if math.isnan(e.hi) else e.hi - e.cer for e in rows]
    below = [0.0 if math.isnan(e.lo) else e.cer - e.lo for e in rows]
    return above, below


def describe(e: Estimate) -> str:
    """``48.0 [45.1, 51.2]`` or, with seeds, ``48.0 [45.1, 51.2] (3 seeds, range 1.9)``."""
    text = f"{e.cer:.1f}"
    if not math.isnan(e.lo):
        text += f" [{e.lo:.1f}, {e.hi:.1f}]"
    if e.seeds > 1:
        text += f" ({e.seeds} seeds, range {e.seed_range:.1f})"
    return text
