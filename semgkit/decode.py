"""Greedy CTC decoding: the best class per frame, repeats merged, blanks dropped."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from semgkit.charset import CHARSET


def collapse(labels: Sequence[int], previous: int = CHARSET.blank) -> list[int]:
    """Merge repeats and drop blanks; ``previous`` is the label just before ``labels``
    (a repeat across a window edge is one key, not two)."""
    out = []
    for label in labels:
        if label != previous and label != CHARSET.blank:
            out.append(int(label))
        previous = label
    return out


def greedy(log_probs: Tensor, lengths: Tensor | None = None) -> list[str]:
    """(B, F, C) log-probabilities (and frame counts) -> one label string per item."""
    best = log_probs.argmax(-1).cpu()
    if lengths is None:
        lengths = torch.full((len(best),), best.shape[1])
    return [
        CHARSET.labels_to_text(collapse(row[: int(n)].tolist()))
        for row, n in zip(best, lengths, strict=True)
    ]
