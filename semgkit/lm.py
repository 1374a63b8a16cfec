"""A character n-gram language model for CTC beam search, in emg2qwerty's scheme.

emg2qwerty decodes with a KenLM 6-gram over lower-case letters whose n-grams stay inside a
word (each word is a sentence, ``<s> t h e </s>``); any other key ends the word. This
module does the same with its own code, because no library fits here: ``kenlm`` has no
wheels (its sdist compiles, and its estimator ``lmplz`` is not in the Python package);
flashlight-text ships KenLM's query side only and its lexicon-free decoder cannot undo a
backspace; pyctcdecode is word-level and pins numpy<2. The estimate is interpolated
modified Kneser-Ney (Chen & Goodman 1998, what ``lmplz`` computes), stored as a standard
ARPA file (KenLM can read ours), and queried with dicts and a per-state cache.

Any ARPA file over single characters loads, ours or ``lmplz``'s, whatever its characters:
``<s>``, ``</s>`` and ``<unk>`` are kept apart from them, so a literal ``^`` or ``$`` (both
in emg2qwerty's own test model) is a character like any other. Each n-gram then holds the
value its line states, as in KenLM. The sums differ in precision only: :meth:`CharLM.logp`
adds in float64, KenLM in float32 (:meth:`CharLM.kenlm_logp` does it KenLM's way, for
emg2qwerty's decoding rule), so the two agree to about 1e-6, not bit for bit; and KenLM
was not run here (no wheel): the agreement is with its ARPA format and arithmetic.

Scores are log10 probabilities, as KenLM's, so ``lm_weight`` means what it does in
emg2qwerty. The shipped model (:func:`default`) is built by ``tools/build_default_lm.py``
from wordfreq's English word frequencies (CC BY-SA 4.0; see ``assets/README.md``), a
source disjoint from the synthetic corpus's prompts.
"""

from __future__ import annotations

import argparse
import gzip
import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import numpy as np

from semgkit.atomic import atomic_write

# <s>, </s> and <unk> inside n-gram strings: lone surrogates, which no UTF-8 text decodes
# to, so every character a file can hold (``^`` and ``$`` included) is a token of its own.
BOS, EOS, UNK = "\ud800", "\ud801", "\ud802"
ARPA_TOKEN = {BOS: "<s>", EOS: "</s>", UNK: "<unk>"}
# Lines are written in the order the markers' former stand-ins ("^", "$", "<unk>") gave,
# so that the shipped model rebuilds byte for byte.
_LINE_ORDER = str.maketrans({BOS: "^", EOS: "$", UNK: "<unk>"})
ARPA_SPACES = " \t\r\n"  # what separates an ARPA line's fields and words (KenLM's set)
DEFAULT_ASSET = Path(__file__).resolve().parent / "assets" / "english-char-6gram.arpa.gz"
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback


class CharLM:
    """Backoff form of a character n-gram model: ``probs`` and ``backoffs`` are log10
    values keyed by n-gram strings (``BOS + "th"`` is ``<s> t h``; ``UNK`` is ``<unk>``)."""

    def __init__(self, order: int, probs: dict[str, float], backoffs: dict[str, float]):
        self.order = order
        self.probs = probs
        self.backoffs = backoffs
        self.unk = probs[UNK]
        self.vocab = frozenset(g for g in probs if len(g) == 1 and g not in ARPA_TOKEN)
        self.start = BOS  # the state at the beginning of a word
        self._steps: dict[tuple[str, str], tuple[str, float]] = {}
        self._kenlm_steps: dict[tuple[str, str], tuple[str, float]] = {}

    def logp(self, context: str, char: str) -> float:
        """log10 p(char | context), backing off to shorter contexts."""
        total = 0.0
        while True:
            p = self.probs.get(context + char)
            if p is not None:
                return total + p
            if not context:
                return total + self.unk
            total += self.backoffs.get(context, 0.0)
            context = context[1:]

    def kenlm_logp(self, context: str, char: str) -> float:
        """:meth:`logp` as KenLM returns it: float32 values, the backoffs of the contexts
        it skips added to the found n-gram's probability shortest context first, in
        float32 (its ``FullScore``)."""
        skipped = []
        while (p := self.probs.get(context + char)) is None and context:
            skipped.append(self.backoffs.get(context, 0.0))
            context = context[1:]
        total = np.float32(self.unk if p is None else p)
        for backoff in reversed(skipped):
            total = total + np.float32(backoff)
        return float(total)

    def step(self, state: str, char: str) -> tuple[str, float]:
        """(next state, log10 score) for typing ``char`` in ``state``. A character outside
        the vocabulary ends the word: it scores ``</s>``, or ``<unk>`` when no word is
        open, and starts a new word (emg2qwerty's rule)."""
        hit = self._steps.get((state, char))
        if hit is None:
            hit = self._steps[(state, char)] = self._step(state, char, self.logp, self.unk)
        return hit

    def kenlm_step(self, state: str, key: str) -> tuple[str, float]:
        """:meth:`step` with KenLM's arithmetic (:meth:`kenlm_logp`), for emg2qwerty's
        decoder, which passes pynput names such as ``Key.space``: never in the vocabulary."""
        hit = self._kenlm_steps.get((state, key))
        if hit is None:
            unk = float(np.float32(self.unk))
            hit = self._kenlm_steps[(state, key)] = self._step(state, key, self.kenlm_logp, unk)
        return hit

    def _step(self, state: str, char: str, logp, unk: float) -> tuple[str, float]:
        if char not in self.vocab:
            return self.start, unk if state == self.start else logp(state, EOS)
        # KenLM keeps the longest suffix that some longer n-gram extends (one with a backoff)
        text = state + char
        state_next = text[max(0, len(text) - self.order + 1) :]
        while state_next and state_next not in self.backoffs:
            state_next = state_next[1:]
        return state_next, logp(state, char)

    def finish(self, state: str) -> float:
        """log10 score of ending the text in ``state`` (``</s>`` for an open word)."""
        return 0.0 if state == self.start else self.logp(state, EOS)

    def score_text(self, text: str) -> float:
        """log10 score of a whole text, with its end."""
        state, total = self.start, 0.0
        for char in text:
            state, score = self.step(state, char)
            total += score
        return total + self.finish(state)

    def write(self, path: Path) -> None:
        """Write an ARPA file (gzip-compressed when the name ends in .gz), atomically."""
        by_order: dict[int, list[str]] = defaultdict(list)
        for gram in self.probs:
            by_order[len(gram)].append(gram)
        lines = ["\\data\\"]
        lines += [f"ngram {n}={len(by_order[n])}" for n in sorted(by_order)]
        for n in sorted(by_order):
            lines += ["", f"\\{n}-grams:"]
            for gram in sorted(by_order[n], key=lambda g: (g.translate(_LINE_ORDER), g)):
                words = " ".join(ARPA_TOKEN.get(c, c) for c in gram)
                line = f"{self.probs[gram]:.6g}\t{words}"
                if gram in self.backoffs:
                    line += f"\t{self.backoffs[gram]:.6g}"
                lines.append(line)
        lines += ["", "\\end\\", ""]
        data = "\n".join(lines).encode()
        atomic_write(Path(path), gzip.compress(data, mtime=0) if _gz(path) else data)

    @classmethod
    def load(cls, path: Path) -> CharLM:
        """Read an ARPA file over single characters: written by :meth:`write` or by
        KenLM's ``lmplz``. ``<s>``, ``</s>`` and ``<unk>`` are the markers; every other
        word is one character, any character (a backoff written as 0 is kept: to KenLM it
        says a longer n-gram extends this one)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such language model file")
        opener = gzip.open if _gz(path) else open
        token = {v: k for k, v in ARPA_TOKEN.items()}
        probs: dict[str, float] = {}
        backoffs: dict[str, float] = {}
        order = 0
        try:
            with opener(path, "rt", encoding="utf-8", newline="\n") as f:
                for number, line in enumerate(f, 1):
                    fields = line.strip(ARPA_SPACES).replace("\t", " ").split(" ")
                    if "" in fields:
                        fields = [w for w in fields if w]
                    if not fields or fields[0] == "ngram":
                        continue
                    if fields[0][0] == "\\":
                        head = fields[0]
                        order = int(head[1:].split("-")[0]) if head.endswith("-grams:") else 0
                        continue
                    if order < 1:
                        continue
                    words = fields[1 : 1 + order]
                    if len(fields) not in (order + 1, order + 2) or len(words) != order:
                        raise ValueError(f"{path}:{number}: not an ARPA {order}-gram line")
                    if any(len(w) != 1 and w not in token for w in words):
                        raise ValueError(f"{path}:{number}: not a character model (words)")
                    gram = "".join(token.get(w, w) for w in words)
                    probs[gram] = _number(fields[0], path, number)
                    if len(fields) == order + 2:
                        backoffs[gram] = _number(fields[-1], path, number)
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from None
        if UNK not in probs:
            raise ValueError(f"{path}: not an ARPA language model (no <unk> unigram)")
        return cls(max(len(g) for g in probs), probs, backoffs)


def _number(text: str, path: Path, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}:{line}: {text!r} is not a log10 value") from None


def _gz(path: Path | str) -> bool:
    return str(path).endswith(".gz")


def words(text: str, vocab: str = string.ascii_lowercase) -> Counter[str]:
    """Word counts of a text: lower-cased runs of letters made only of ``vocab``."""
    runs = re.findall(r"[^\W\d_]+", text.lower())
    allowed = set(vocab)
    return Counter(w for w in runs if set(w) <= allowed)


def build(word_counts: Mapping[str, int], order: int = 6) -> CharLM:
    """Interpolated modified Kneser-Ney over the characters of each word (``<s> w </s>``)."""
    if order < 2:
        raise ValueError(f"order {order}: a character n-gram model needs order >= 2")
    counts = [Counter() for _ in range(order + 1)]  # counts[n][gram], grams of n chars
    for word, k in word_counts.items():
        if k <= 0 or not word:
            continue
        if any(marker in word for marker in ARPA_TOKEN):
            raise ValueError(f"word {word!r}: holds a character reserved for <s>, </s>, <unk>")
        seq = BOS + word + EOS
        for end in range(2, len(seq) + 1):  # the character at end-1 is predicted
            for n in range(1, min(order, end) + 1):
                counts[n][seq[end - n : end]] += k
    if not counts[1]:
        raise ValueError("no words to build a language model from")
    # Kneser-Ney: below the top order, an n-gram counts the distinct characters seen
    # before it, unless it starts with <s> (nothing can precede it).
    adjusted = [Counter() for _ in range(order + 1)]
    adjusted[order] = counts[order]
    for n in range(order - 1, 0, -1):
        for gram, k in counts[n].items():
            if gram[0] == BOS:
                adjusted[n][gram] = k
        for gram in counts[n + 1]:
            adjusted[n][gram[1:]] += 1
    probs: dict[str, float] = {}
    backoffs: dict[str, float] = {}
    lower: dict[str, float] = {}  # interpolated probabilities of the order below
    vocab_size = len(adjusted[1]) + 1  # with <unk>
    for n in range(1, order + 1):
        d = _discounts(adjusted[n])
        total: Counter[str] = Counter()
        mass: Counter[str] = Counter()
        for gram, k in adjusted[n].items():
            total[gram[:-1]] += k
            mass[gram[:-1]] += d[min(k, 3) - 1]
        current = {}
        for gram, k in adjusted[n].items():
            context = gram[:-1]
            back = lower[gram[1:]] if n > 1 else 1.0 / vocab_size
            current[gram] = (k - d[min(k, 3) - 1] + mass[context] * back) / total[context]
        for context in total:
            backoffs[context] = _log10(mass[context] / total[context])
        if n == 1:
            current[UNK] = mass[""] / total[""] / vocab_size
        probs.update((g, _log10(p)) for g, p in current.items())
        lower = current
    backoffs.pop("", None)  # the unigrams already hold the uniform share
    probs[BOS] = -99.0  # listed so that <s> can carry its backoff, as in ARPA files
    return CharLM(order, probs, backoffs)


def _discounts(counts: Counter[str]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from counts of counts."""
    t = Counter(min(k, 4) for k in counts.values())
    if min(t[1], t[2], t[3], t[4]) == 0:
        return FALLBACK_DISCOUNTS
    y = t[1] / (t[1] + 2 * t[2])
    d = (1 - 2 * y * t[2] / t[1], 2 - 3 * y * t[3] / t[2], 3 - 4 * y * t[4] / t[3])
    return d if all(0 < x < i + 1 for i, x in enumerate(d)) else FALLBACK_DISCOUNTS


def _log10(p: float) -> float:
    return math.log10(p) if p > 0 else -99.0


@cache
def default() -> CharLM:
    """The shipped English character 6-gram (see the module docstring)."""
    return CharLM.load(DEFAULT_ASSET)


def build_from_files(paths: Iterable[Path], order: int) -> CharLM:
    """Build from plain-text files."""
    counts: Counter[str] = Counter()
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such text file")
        counts.update(words(path.read_text(encoding="utf-8", errors="replace")))
    return build(counts, order)


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lm", help="character language models for beam search")
    sub = p.add_subparsers(dest="lm_command", required=True, metavar="ACTION")
    b = sub.add_parser("build", help="build a character n-gram model from plain text")
    b.add_argument("--text", type=Path, nargs="+", required=True, help="plain-text FILE(s)")
    b.add_argument("--order", type=int, default=6, help="n-gram order (default 6)")
    b.add_argument("--out", type=Path, required=True, help="output ARPA file (.gz to compress)")
    b.set_defaults(func=_cli_build)


def _cli_build(args: argparse.Namespace) -> int:
    model = build_from_files(args.text, args.order)
    model.write(args.out)
    print(f"wrote {args.out}: order {model.order}, {len(model.probs)} n-grams")
    return 0
