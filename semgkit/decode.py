"""CTC decoding: greedy (the best class per frame, repeats merged, blanks dropped) and a
prefix beam search with an optional character language model."""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from semgkit.charset import CHARSET, KEY_TO_CHAR

if TYPE_CHECKING:  # the LM module is only needed by callers that pass one
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
RULES = ("semgkit", "emg2qwerty")
# What emg2qwerty's decoder passes its LM for each label: the key, a pynput name for
# enter, space and shift (never a character of a character LM).
EMG2QWERTY_KEYS = [{c: k for k, c in KEY_TO_CHAR.items()}.get(c, c) for c in CHARSET.chars]


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
    min_log_prob: float | None = None,
    rule: str = "semgkit",
) -> list[str]:
    """CTC prefix beam search: (B, F, C) log-probabilities -> one label string per item.

    Sums every alignment of a labelling, so it finds what best-path decoding misses (two
    frames of p(a)=0.4, p(blank)=0.6 give "a"). With a character ``lm``, each typed key
    adds ``lm_weight`` times its log10 LM score plus ``insertion_bonus``, and a backspace
    takes back what the key it deletes added: the LM scores the text after backspaces
    (emg2qwerty's settings: beam 50, 10 labels per frame, weight 2, bonus 2).

    ``rule`` says which search: ``"semgkit"`` extends each prefix on every frame with the
    blank and the ``max_labels`` most probable keys (of those, only the ones above
    ``min_log_prob``, if given: a confident model then skips most frames), and picks the
    final text with the LM's end-of-word score added. ``"emg2qwerty"`` returns the texts
    of emg2qwerty's ``CTCBeamDecoder.decode_batch``: the ``max_labels`` most probable of
    all 99 classes (the blank only if it is among them), the beam sorted by probability
    every frame (ties in the order prefixes were made), no end-of-word score at the end,
    its sums in its order, and the LM's scores as KenLM computes them (float32). Its
    sums are float64, as under NumPy 1 (its era); under NumPy 2 its own code sums
    float32 emissions in float32 and may break near-ties otherwise.
    """
    if rule not in RULES:
        raise ValueError(f"rule {rule!r}: choose one of {', '.join(RULES)}")
    if rule == "emg2qwerty" and min_log_prob is not None:
        raise ValueError("min_log_prob: emg2qwerty's rule has no floor; leave it None")
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
    if rule == "emg2qwerty":
        emissions = log_probs.detach().cpu().numpy()
        return [
            _emg2qwerty_one(
                emissions[i, : int(n)], beam, lm, lm_weight, insertion_bonus, max_labels
            )
            for i, n in enumerate(lengths.tolist())
        ]
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


class _Prefixes:
    """Every prefix the search kept, as a trie of ids (parent, last label). Each id also
    points into a trie of the text after backspaces whose nodes carry the LM state, the
    gain of their last key and the LM total of that text, so a backspace goes back to the
    node of the shorter text. ``kenlm``: the LM is asked as emg2qwerty asks KenLM."""

    def __init__(self, lm: CharLM | None, lm_weight: float, bonus: float, kenlm: bool = False):
        self.lm, self.lm_weight, self.bonus, self.kenlm = lm, lm_weight, bonus, kenlm
        self.keys = EMG2QWERTY_KEYS if kenlm else CHARSET.chars
        self.lm_step = None if lm is None else lm.kenlm_step if kenlm else lm.step
        self.parent, self.last, self.text = [-1], [CHARSET.blank], [0]
        self.child: dict[tuple[int, int], int] = {}
        self.t_parent, self.t_state = [0], [lm.start if lm else ""]
        self.t_gain, self.t_total = [0.0], [0.0]
        self.t_child: dict[tuple[int, int], int] = {}
        self.typed: dict[tuple[str, int], float] = {}  # (LM state, key) -> gain

    def lm_view(self, prefix: int) -> tuple[str, float]:
        """The LM state after ``prefix``, and what a backspace there adds."""
        node = self.text[prefix]
        if self.kenlm:  # emg2qwerty subtracts the last key's own gain
            return self.t_state[node], -self.t_gain[node]
        return self.t_state[node], self.t_total[self.t_parent[node]] - self.t_total[node]

    def typed_gain(self, state: str, label: int) -> float:
        """What the LM adds for typing key ``label`` (not a backspace) in ``state``."""
        gain = self.typed.get((state, label))
        if gain is None:
            score = self.lm_step(state, self.keys[label])[1]
            gain = self.typed[(state, label)] = self.lm_weight * score + self.bonus
        return gain

    def extend(self, prefix: int, label: int) -> int:
        """The id of ``prefix`` + ``label``, made now."""
        new = self.child[(prefix, label)] = len(self.parent)
        self.parent.append(prefix)
        self.last.append(label)
        node = self.text[prefix]
        if label == BACKSPACE:
            self.text.append(self.t_parent[node])
            return new
        text = self.t_child.get((node, label))
        if text is None:
            text = self.t_child[(node, label)] = len(self.t_parent)
            state, gain = self.t_state[node], 0.0
            if self.lm is not None:
                gain = self.typed_gain(state, label)
                state = self.lm_step(state, self.keys[label])[0]
            self.t_parent.append(node)
            self.t_state.append(state)
            self.t_gain.append(gain)
            self.t_total.append(self.t_total[node] + gain)
        self.text.append(text)
        return new

    def finish(self, prefix: int) -> float:
        """What the LM adds for ending the text after ``prefix``."""
        if self.lm is None:
            return 0.0
        return self.lm_weight * self.lm.finish(self.t_state[self.text[prefix]])

    def labels(self, prefix: int) -> list[int]:
        out = []
        while prefix > 0:
            out.append(self.last[prefix])
            prefix = self.parent[prefix]
        return out[::-1]


def _beam_search_one(scores, beam, lm, lm_weight, bonus, max_labels, min_log_prob) -> str:
    tries = _Prefixes(lm, lm_weight, bonus)
    last, child, typed, typed_gain = tries.last, tries.child, tries.typed, tries.typed_gain
    state, back = "", 0.0
    beams = [(0, 0.0, NEG_INF)]  # (prefix id, log p ending in a blank, ... in a key)
    blanks = scores[:, CHARSET.blank].tolist()
    for blank, candidates in zip(
        blanks, _candidates(scores, max_labels, min_log_prob), strict=True
    ):
        nxt: dict = {}  # prefix id, or (prefix id, label) for a new one -> [p_b, p_k]
        for prefix, p_b, p_k in beams:
            p = _logaddexp(p_b, p_k)
            stay = nxt.get(prefix)
            if stay is None:
                nxt[prefix] = stay = [NEG_INF, NEG_INF]
            stay[0] = _logaddexp(stay[0], p + blank)
            prev = last[prefix]
            if lm is not None:
                state, back = tries.lm_view(prefix)
            for label, lp in candidates:
                if label == prev:  # a repeat collapses unless a blank came between
                    stay[1] = _logaddexp(stay[1], p_k + lp)
                    score = p_b + lp
                else:
                    score = p + lp
                if lm is not None:
                    if label == BACKSPACE:
                        score += back
                    else:
                        gain = typed.get((state, label))  # the hot path: no call on a hit
                        score += typed_gain(state, label) if gain is None else gain
                key = child.get((prefix, label), (prefix, label))
                entry = nxt.get(key)
                if entry is None:
                    nxt[key] = [NEG_INF, score]
                else:
                    entry[1] = _logaddexp(entry[1], score)
        best = nxt.items()
        if len(nxt) > beam:
            best = heapq.nlargest(beam, best, key=lambda kv: _logaddexp(*kv[1]))
        beams = [
            (tries.extend(*key) if isinstance(key, tuple) else key, p_b, p_k)
            for key, (p_b, p_k) in best
        ]
    final = max(beams, key=lambda b: _logaddexp(b[1], b[2]) + tries.finish(b[0]))
    return CHARSET.labels_to_text(tries.labels(final[0]))


def _lse2(a: float, b: float) -> float:
    """emg2qwerty's log-sum-exp of two, bit for bit: the max plus the log of a sum of exps."""
    m = a if a >= b else b
    return m if m == NEG_INF else m + math.log(math.exp(a - m) + math.exp(b - m))


def _lse3(a: float, b: float, c: float) -> float:
    m = max(a, b, c)
    return m if m == NEG_INF else m + math.log(math.exp(a - m) + math.exp(b - m) + math.exp(c - m))


def _emg2qwerty_one(emissions, beam, lm, lm_weight, bonus, max_labels) -> str:
    """emg2qwerty's ``CTCBeamDecoder.decode`` without ``finish``, as ``decode_batch`` runs it."""
    tries = _Prefixes(lm, lm_weight, bonus, kenlm=True)
    last, child, typed, typed_gain = tries.last, tries.child, tries.typed, tries.typed_gain
    exp, log = math.exp, math.log
    order = np.argsort(-emissions, axis=1)  # its call: numpy's default sort, on its dtype
    if max_labels is not None and max_labels > 0:
        order = order[:, :max_labels]
    values = np.take_along_axis(emissions, order, axis=1).astype(np.float64)
    blank, state, back, p_lm = CHARSET.blank, "", 0.0, 0.0
    beams = [(0, 0.0, NEG_INF)]  # (prefix id, log p ending in a blank, ... in a key)
    for labels, ps in zip(order.tolist(), values.tolist(), strict=True):
        nxt: dict = {}  # prefix id, or (prefix id, label) for a new one -> [p_b, p_nb]
        for prefix, p_b, p_nb in beams:
            stay = nxt.get(prefix)
            if stay is None:
                nxt[prefix] = stay = [NEG_INF, NEG_INF]
            prev = last[prefix]
            if lm is not None:
                state, back = tries.lm_view(prefix)
            for label, p in zip(labels, ps, strict=True):
                if label == blank:
                    stay[0] = _lse3(stay[0], p_b + p, p_nb + p)
                    continue
                key = child.get((prefix, label), (prefix, label))
                entry = nxt.get(key)
                if entry is None:
                    nxt[key] = entry = [NEG_INF, NEG_INF]
                if lm is not None:
                    if label == BACKSPACE:
                        p_lm = back
                    else:
                        p_lm = typed.get((state, label))  # the hot path: no call on a hit
                        if p_lm is None:
                            p_lm = typed_gain(state, label)
                if label == prev:
                    stay[1] = _lse2(stay[1], p_nb + p)
                    entry[1] = _lse2(entry[1], p_b + p + p_lm)
                elif entry[1] == NEG_INF:  # its sum of three, whose first exp adds an exact 0
                    a, b = p_b + p + p_lm, p_nb + p + p_lm
                    m = a if a >= b else b
                    entry[1] = m if m == NEG_INF else m + log(exp(a - m) + exp(b - m))
                else:
                    entry[1] = _lse3(entry[1], p_b + p + p_lm, p_nb + p + p_lm)
        beams = [
            (tries.extend(*key) if isinstance(key, tuple) else key, p_b, p_nb)
            for key, (p_b, p_nb) in _best(list(nxt.items()), beam)
        ]
    return CHARSET.labels_to_text(tries.labels(beams[0][0]))


def _best(items: list, beam: int) -> list:
    """``sorted(items, by p_total, reverse=True)[:beam]`` (stable, as emg2qwerty sorts),
    computing p_total only where it can matter: an entry whose larger part is 1 below
    the ``beam``-th largest such part (p_total lies between it and it + log 2) is out."""
    if len(items) > beam:
        highs = [b if b >= k else k for _, (b, k) in items]
        floor = heapq.nlargest(beam, highs)[-1] - 1.0
        items = [item for item, high in zip(items, highs, strict=True) if high >= floor]
    return sorted(items, key=lambda kv: _lse2(*kv[1]), reverse=True)[:beam]
