"""CTC prefix beam search: against best-path decoding, brute force, and with the shipped LM."""

import itertools
import math
from collections import defaultdict

import pytest
import torch

from semgkit import lm
from semgkit.charset import CHARSET
from semgkit.decode import beam_search, collapse, greedy

BLANK = CHARSET.blank


def frames(rows: list[dict[str, float]]) -> torch.Tensor:
    """(1, F, C) log-probabilities: each row maps keys ("_" for blank) to probabilities."""
    out = torch.full((len(rows), CHARSET.num_classes), -math.inf)
    for i, row in enumerate(rows):
        for key, p in row.items():
            out[i, BLANK if key == "_" else CHARSET.text_to_labels(key)[0]] = math.log(p)
    return out[None]


def test_beam_finds_the_labelling_best_path_misses():
    log_probs = frames([{"a": 0.4, "_": 0.6}] * 2)  # P("")=0.36 < P("a")=0.4*0.6*2+0.16
    assert greedy(log_probs) == [""]
    assert beam_search(log_probs) == ["a"]


def applied(text: str) -> str:
    """The text left after its backspaces."""
    out: list[str] = []
    for char in text:
        if char == "⌫":
            if out:
                out.pop()
        else:
            out.append(char)
    return "".join(out)


def brute_force(log_probs: torch.Tensor, keys: str, score=lambda text: 0.0) -> str:
    """The labelling of highest CTC probability (plus ``score``), over every alignment."""
    labels = [*CHARSET.text_to_labels(keys), BLANK]
    rows = log_probs[0].tolist()
    total: dict[str, float] = defaultdict(lambda: -math.inf)
    for path in itertools.product(labels, repeat=len(rows)):
        p = sum(row[k] for row, k in zip(rows, path, strict=True))
        text = CHARSET.labels_to_text(collapse(path))
        high, low = max(total[text], p), min(total[text], p)
        total[text] = high + math.log1p(math.exp(low - high)) if low > -math.inf else high
    return max(total, key=lambda text: total[text] + score(text))


def random_frames(keys: str, num_frames: int, seed: int) -> torch.Tensor:
    """Random emissions over ``keys`` and the blank; every other class has probability 0."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.full((1, num_frames, CHARSET.num_classes), -math.inf)
    active = [*CHARSET.text_to_labels(keys), BLANK]
    logits[..., active] = 1.5 * torch.randn(1, num_frames, len(active), generator=g)
    return logits.log_softmax(-1)


@pytest.mark.parametrize("seed", range(12))
def test_wide_beam_without_lm_is_exact(seed):
    log_probs = random_frames("ab⌫", 5, seed)
    found = beam_search(log_probs, beam=500, max_labels=None, min_log_prob=None)
    assert found == [brute_force(log_probs, "ab⌫")]


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_with_lm_scores_the_text_after_backspaces(seed):
    model = lm.build({"ab": 5, "ba": 3, "a": 10}, order=3)
    weight, bonus = 1.5, 0.5

    def score(text: str) -> float:
        kept = applied(text)
        return weight * model.score_text(kept) + bonus * len(kept)

    log_probs = random_frames("ab⌫", 5, 100 + seed)
    found = beam_search(
        log_probs,
        beam=500,
        lm=model,
        lm_weight=weight,
        insertion_bonus=bonus,
        max_labels=None,
        min_log_prob=None,
    )
    assert found == [brute_force(log_probs, "ab⌫", score)]


def test_default_lm_prefers_the_over_teh():
    # Each of the two middle keys is acoustically 52:48 in favour of "teh".
    rows = [{"t": 0.9, "_": 0.1}, {"_": 1.0}, {"e": 0.52, "h": 0.48}, {"_": 1.0}]
    rows += [{"h": 0.52, "e": 0.48}, {"_": 1.0}]
    log_probs = frames(rows)
    assert beam_search(log_probs) == ["teh"]
    assert beam_search(log_probs, lm=lm.default()) == ["the"]


def test_lengths_and_batch():
    two = torch.cat([frames([{"a": 1.0}, {"_": 1.0}, {"b": 1.0}]), frames([{"c": 1.0}] * 3)])
    assert beam_search(two, torch.tensor([3, 1])) == ["ab", "c"]
    assert beam_search(two, torch.tensor([0, 3])) == ["", "c"]
    assert beam_search(two) == greedy(two)


@pytest.mark.parametrize(
    ("log_probs", "kwargs", "message"),
    [
        (torch.zeros(4, CHARSET.num_classes), {}, "expected \\(batch, frames, 99\\)"),
        (torch.zeros(1, 4, 98), {}, "expected \\(batch, frames, 99\\)"),
        (torch.zeros(1, 4, 99), {"beam": 0}, "beam 0"),
        (torch.zeros(2, 4, 99), {"lengths": torch.tensor([4, 5])}, "lengths must lie in 0..4"),
        (torch.zeros(2, 4, 99), {"lengths": torch.tensor([4])}, "lengths shaped"),
    ],
)
def test_bad_input(log_probs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        beam_search(log_probs, **kwargs)
