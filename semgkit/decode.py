"""CTC decoding: greedy (the best class per frame, repeats merged, blanks dropped) and a
prefix beam search with an optional character language model."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from semgkit.charset import CHARSET
from semgkit.lm import CharLM


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


BACKSPACE = CHARSET.text_to_labels("⌫")[0]
NEG_INF = -math.inf


def _logaddexp(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


def beam_search(
    log_probs: Tensor,
    lengths: Tensor | None = None,
    beam: int = 50,
    lm: CharLM | None = None,
    lm_weight: float = 2.0,
    insertion_bonus: float = 2.0,
    max_labels: int | None = 10,
    min_log_prob: float | None = -12.0,
) -> list[str]:
    """CTC prefix beam search: (B, F, C) log-probabilities -> one label string per item.

    Sums every alignment of a labelling, so it finds what best-path decoding misses (two
    frames of p(a)=0.4, p(blank)=0.6 give "a"). With a character ``lm``, each typed key
    adds ``lm_weight`` times its log10 LM score plus ``insertion_bonus``, and a backspace
    takes back what the key it deletes added: the LM scores the text after backspaces
    (emg2qwerty's defaults: beam 50, weight 2, bonus 2). Per frame only the ``max_labels``
    most probable keys above ``min_log_prob`` extend the beam (emg2qwerty keeps 10).
    """
    if log_probs.ndim != 3 or log_probs.shape[-1] != CHARSET.num_classes:
        raise ValueError(
            f"log_probs shaped {tuple(log_probs.shape)}: expected (batch, frames, "
            f"{CHARSET.num_classes})"
        )
    if beam < 1:
        raise ValueError(f"beam {beam}: must be at least 1")
    batch, frames = log_probs.shape[:2]
    if lengths is None:
        lengths = torch.full((batch,), frames)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths shaped {tuple(lengths.shape)}: expected ({batch},)")
    if len(lengths) and not 0 <= int(lengths.min()) <= int(lengths.max()) <= frames:
        raise ValueError(f"lengths must lie in 0..{frames} (the frames of log_probs)")
    scores = log_probs.detach().cpu().double().numpy()
    return [
        _beam_search_one(
            scores[i, : int(n)], beam, lm, lm_weight, insertion_bonus, max_labels, min_log_prob
        )
        for i, n in enumerate(lengths.tolist())
    ]


def _candidates(
    scores: np.ndarray, max_labels: int | None, min_log_prob: float | None
) -> list[list[tuple[int, float]]]:
    """Per frame, the (key, log-probability) pairs worth extending a prefix with."""
    keys = scores[:, : CHARSET.blank]
    k = keys.shape[1] if max_labels is None else min(max_labels, keys.shape[1])
    top = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(keys, top, axis=1)
    floor = NEG_INF if min_log_prob is None else min_log_prob
    keep = values > max(floor, NEG_INF)
    return [
        list(zip(t[m].tolist(), v[m].tolist(), strict=True))
        for t, v, m in zip(top, values, keep, strict=True)
    ]


def _beam_search_one(scores, beam, lm, lm_weight, bonus, max_labels, min_log_prob) -> str:
    # Prefixes live in a trie of ids (parent, last label); each id also points into a
    # second trie of the text after backspaces, whose nodes carry the LM state and the
    # LM total of that text, so a backspace returns to the node of the shorter text.
    parent, last, text = [-1], [CHARSET.blank], [0]
    child: dict[tuple[int, int], int] = {}
    t_parent, t_state, t_total = [0], [lm.start if lm else ""], [0.0]
    t_child: dict[tuple[int, int], int] = {}
    chars = CHARSET.chars

    def lm_gain(prefix: int, label: int) -> tuple[float, str]:
        node = text[prefix]
        if label == BACKSPACE:
            return t_total[t_parent[node]] - t_total[node], ""
        state, score = lm.step(t_state[node], chars[label])
        return lm_weight * score + bonus, state

    beams = [(0, 0.0, NEG_INF)]  # (prefix id, log p ending in blank, ... in a key)
    blanks = scores[:, CHARSET.blank].tolist()
    for frame, candidates in zip(blanks, _candidates(scores, max_labels, min_log_prob)):
        nxt: dict = {}
        for prefix, p_b, p_k in beams:
            p = _logaddexp(p_b, p_k)
            stay = nxt.get(prefix)
            if stay is None:
                nxt[prefix] = stay = [NEG_INF, NEG_INF]
            stay[0] = _logaddexp(stay[0], p + frame)
            prev = last[prefix]
            for label, lp in candidates:
                if label == prev:  # a repeat collapses unless a blank came between
                    stay[1] = _logaddexp(stay[1], p_k + lp)
                    score = p_b + lp
                else:
                    score = p + lp
                if lm is not None:
                    score += lm_gain(prefix, label)[0]
                key = child.get((prefix, label), (prefix, label))
                entry = nxt.get(key)
                if entry is None:
                    nxt[key] = [NEG_INF, score]
                else:
                    entry[1] = _logaddexp(entry[1], score)
        best = heapq.nlargest(beam, nxt.items(), key=lambda kv: _logaddexp(*kv[1]))
        beams = []
        for key, (p_b, p_k) in best:
            if isinstance(key, tuple):  # a new prefix: give it an id and its text node
                prefix, label = key
                child[key] = len(parent)
                key = len(parent)
                parent.append(prefix)
                last.append(label)
                node = text[prefix]
                if label == BACKSPACE:
                    text.append(t_parent[node])
                else:
                    text.append(t_child.get((node, label), len(t_parent)))
                    if text[-1] == len(t_parent):
                        gain, state = lm_gain(prefix, label) if lm else (0.0, "")
                        t_child[(node, label)] = text[-1]
                        t_parent.append(node)
                        t_state.append(state)
                        t_total.append(t_total[node] + gain)
            beams.append((key, p_b, p_k))
    finish = (lambda i: lm_weight * lm.finish(t_state[text[i]])) if lm else (lambda i: 0.0)
    best_id = max(beams, key=lambda b: _logaddexp(b[1], b[2]) + finish(b[0]))[0]
    labels = []
    while best_id > 0:
        labels.append(last[best_id])
        best_id = parent[best_id]
    return CHARSET.labels_to_text(reversed(labels))
