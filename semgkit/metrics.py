"""Character error rates the way the paper reports them: edits pooled over the test set.

CER = 100 x (insertions + deletions + substitutions) / characters of ground truth, with
the edit operations of a Levenshtein alignment (rapidfuzz). IER, DER and SER are the three
parts of the CER, counted as emg2qwerty's ``CharacterErrorRates`` counts them: the edits that
turn the *prediction* into the *target*. So a key the model missed is an insertion (an empty
prediction against "abc" is 100 % IER) and an extra predicted key is a deletion. Pooling (total edits over total characters) weighs every character
alike, unlike a mean of per-window CERs, which over-weighs short windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from rapidfuzz.distance import Levenshtein

RATES = ("CER", "IER", "DER", "SER")
OPS = {"insert": "insertions", "delete": "deletions", "replace": "substitutions"}


def edit_counts(prediction: str, target: str) -> dict[str, int]:
    """Insertions, deletions and substitutions turning ``prediction`` into ``target``."""
    counts = dict.fromkeys(OPS.values(), 0)
    for op in Levenshtein.editops(prediction, target):
        counts[OPS[op.tag]] += 1
    counts["chars"] = len(target)
    return counts


def rates(counts: dict[str, int]) -> dict[str, float]:
    """Pooled counts -> percentages (NaN when there is no ground truth at all)."""
    chars = counts["chars"]
    if chars == 0:
        return dict.fromkeys(RATES, float("nan"))
    i, d, s = counts["insertions"], counts["deletions"], counts["substitutions"]
    return {
        "CER": 100.0 * (i + d + s) / chars,
        "IER": 100.0 * i / chars,
        "DER": 100.0 * d / chars,
        "SER": 100.0 * s / chars,
    }


def pooled_counts(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, int]:
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
    total = dict.fromkeys([*OPS.values(), "chars"], 0)
    for p, t in zip(predictions, targets, strict=True):
        for key, value in edit_counts(p, t).items():
            total[key] += value
    return total


def error_rates(predictions: Sequence[str], targets: Sequence[str]) -> dict[str, float]:
    """CER, IER, DER, SER in percent, pooled over all (prediction, target) pairs."""
    return rates(pooled_counts(predictions, targets))


def per_user(
    predictions: Sequence[str], targets: Sequence[str], users: Sequence[str]
) -> pd.DataFrame:
    """One row per user (pooled over that user's pairs) with counts and rates."""
    if not len(predictions) == len(targets) == len(users):
        raise ValueError("predictions, targets and users must have the same length")
    rows = []
    for user in sorted(set(users)):
        idx = [i for i, u in enumerate(users) if u == user]
        counts = pooled_counts([predictions[i] for i in idx], [targets[i] for i in idx])
        rows.append({"user": user, **rates(counts), **counts})
    return pd.DataFrame(rows)
