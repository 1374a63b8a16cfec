"""CTC prefix beam search: against best-path decoding, brute force, and with the shipped LM."""

import itertools
import math
from collections import defaultdict

import numpy as np
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


# emg2qwerty's CTCBeamDecoder.decode_batch, written again as plainly as its code reads
# (states keyed by their label tuple, an LM trie as a list of (state, score) nodes), to
# check decode.beam_search(rule="emg2qwerty") against.
PYNPUT = {"⏎": "Key.enter", " ": "Key.space", "⇧": "Key.shift"}
BACKSPACE = CHARSET.text_to_labels("⌫")[0]


def logsumexp(*xs: float) -> float:
    top = max(xs)
    return top if top == -math.inf else top + math.log(sum(math.exp(x - top) for x in xs))


class State:
    def __init__(self, labels, lm_path, p_b=-math.inf, p_nb=-math.inf):
        self.labels, self.lm_path, self.p_b, self.p_nb = labels, lm_path, p_b, p_nb

    @property
    def p_total(self) -> float:
        return logsumexp(self.p_b, self.p_nb)


def next_state(made: dict, prev: State, label: int | None, model) -> State:
    """The state of ``prev`` + ``label`` (``None``: a blank or a repeat), made once a frame."""
    key = prev.labels if label is None else (*prev.labels, label)
    if key not in made:
        path = prev.lm_path
        if label is not None and model is not None:
            if label != BACKSPACE:
                char = PYNPUT.get(CHARSET.chars[label], CHARSET.chars[label])
                path = [*path, model.kenlm_step(path[-1][0], char)]
            elif len(path) > 1:
                path = path[:-1]
        made[key] = State(key, path)
    return made[key]


def lm_score(prev: State, new: State, model, weight: float, bonus: float) -> float:
    if model is None:
        return 0.0
    if new.labels[-1] != BACKSPACE:
        return weight * new.lm_path[-1][1] + bonus
    return -weight * prev.lm_path[-1][1] - bonus if len(prev.lm_path) > 1 else 0.0


def reference(emissions, beam=50, top=10, model=None, weight=2.0, bonus=2.0) -> str:
    indices = np.argsort(-emissions, axis=1)[:, :top]
    states = [State((), [(model.start, 0.0)] if model else None, p_b=0.0)]
    for t in range(len(emissions)):
        made: dict[tuple, State] = {}
        for prev in states:
            stay = next_state(made, prev, None, model)
            for label in indices[t]:
                p = float(emissions[t, label])
                if label == BLANK:
                    stay.p_b = logsumexp(stay.p_b, prev.p_b + p, prev.p_nb + p)
                    continue
                new = next_state(made, prev, int(label), model)
                p_lm = lm_score(prev, new, model, weight, bonus)
                if prev.labels and label == prev.labels[-1]:
                    stay.p_nb = logsumexp(stay.p_nb, prev.p_nb + p)
                    new.p_nb = logsumexp(new.p_nb, prev.p_b + p + p_lm)
                else:
                    new.p_nb = logsumexp(new.p_nb, prev.p_b + p + p_lm, prev.p_nb + p + p_lm)
        states = sorted(made.values(), key=lambda s: s.p_total, reverse=True)[:beam]
    return CHARSET.labels_to_text(list(states[0].labels))


def rough_emissions(frames: int, seed: int) -> torch.Tensor:
    """(1, frames, 99) float32: letters, space and backspace likelier than the rest, the
    blank anywhere from first to far outside the 10 best, so prefixes compete."""
    g = torch.Generator().manual_seed(seed)
    logits = 1.5 * torch.randn(frames, CHARSET.num_classes, generator=g)
    logits[:, CHARSET.text_to_labels("etaoinshr ⌫")] += 2.5
    logits[:, BLANK] += 6.0 * torch.rand(frames, generator=g) - 1.0
    return logits.log_softmax(-1)[None]


@pytest.mark.parametrize(
    ("seed", "beam", "with_lm"),
    [(0, 50, True), (1, 8, True), (2, 8, True), (3, 50, False), (4, 8, False)],
)
def test_emg2qwerty_rule_equals_a_plain_reading_of_its_code(seed, beam, with_lm):
    model = lm.default() if with_lm else None
    log_probs = rough_emissions(30, seed)
    found = beam_search(log_probs, beam=beam, lm=model, rule="emg2qwerty")
    assert found == [reference(log_probs[0].numpy(), beam=beam, model=model)]


def test_the_two_rules_differ_where_emg2qwerty_adds_no_end_of_word_score(tmp_path):
    """One frame, "q" 0.85 or "a" 0.15. With the LM "a" gains 1.2 and "q" -1.4 as keys
    (weight 2, bonus 2), but ending the word costs "a" 2 x -1.5 and "q" 2 x -0.6: without
    the end "a" wins by 0.87 (emg2qwerty), with it "q" by 0.93 (semgkit)."""
    arpa = tmp_path / "aq.arpa"
    arpa.write_text(
        "\\data\\\nngram 1=5\nngram 2=2\n\n\\1-grams:\n-1.0\t<unk>\t0\n-99\t<s>\t-0.5\n"
        "-0.6\t</s>\t0\n-0.7\ta\t-0.4\n-1.2\tq\n\n\\2-grams:\n-0.4\t<s> a\n-1.5\ta </s>\n\n\\end\\\n"
    )
    model = lm.CharLM.load(arpa)
    log_probs = frames([{"q": 0.85, "a": 0.15}])
    assert beam_search(log_probs, lm=model) == ["q"]
    assert beam_search(log_probs, lm=model, rule="emg2qwerty") == ["a"]
    assert reference(log_probs[0].numpy(), model=model) == "a"


def test_the_two_rules_differ_where_the_blank_is_not_among_the_10_best():
    """After "a", a frame whose 10 best classes are keys: the blank (0.05) is 11th. With
    it, "a" holds 0.09 (a repeated) + 0.05 and beats "ab" (0.10); without it, it does not."""
    others = dict.fromkeys("cdefghij", 0.085)
    log_probs = frames([{"a": 1.0}, {"b": 0.10, "a": 0.09, **others, "_": 0.05}, {"_": 1.0}])
    assert beam_search(log_probs) == ["a"]
    assert beam_search(log_probs, rule="emg2qwerty") == ["ab"]
    assert reference(log_probs[0].numpy()) == "ab"


def test_rule_settings_are_checked():
    with pytest.raises(ValueError, match="rule 'kenlm'"):
        beam_search(frames([{"a": 1.0}]), rule="kenlm")
    with pytest.raises(ValueError, match="min_log_prob: emg2qwerty's rule has no floor"):
        beam_search(frames([{"a": 1.0}]), rule="emg2qwerty", min_log_prob=-8.0)


@pytest.mark.parametrize("beam", [3, 50])
def test_emg2qwerty_rule_breaks_ties_as_its_code_does(beam):
    """Every class equally likely on most frames: many prefixes tie exactly, and which
    one is kept or returned follows the order emg2qwerty made them in."""
    log_probs = torch.full((1, 5, CHARSET.num_classes), -math.log(CHARSET.num_classes))
    log_probs[0, 2, :10] = -1.0
    for model in (None, lm.default()):
        found = beam_search(log_probs, beam=beam, lm=model, rule="emg2qwerty")
        assert found == [reference(log_probs[0].numpy(), beam=beam, model=model)]
