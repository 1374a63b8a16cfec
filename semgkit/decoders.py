"""How log-probabilities become text: greedy, or a CTC beam search with or without a
character language model, under semgkit's search rule or exactly emg2qwerty's
(:func:`semgkit.decode.beam_search`). Greedy decoding gives the paper's numbers.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from semgkit import decode, lm


@dataclass(frozen=True)
class Decoder:
    """Greedy decoding, or a CTC prefix beam search of width ``beam`` scored with the
    character LM ``lm``: "none", "default" (:func:`semgkit.lm.default`) or an ARPA file.
    ``min_log_prob`` skips keys below that log-probability on a frame (faster search).
    ``rule``: semgkit's search or exactly emg2qwerty's (see :func:`decode.beam_search`)."""

    kind: str = "greedy"
    beam: int = 50
    lm: str = "none"
    lm_weight: float = 2.0
    insertion_bonus: float = 2.0
    min_log_prob: float | None = None
    rule: str = "semgkit"

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "beam"):
            raise ValueError(f"decoder {self.kind!r}: choose greedy or beam")
        if self.kind == "greedy" and self.lm != "none":
            raise ValueError(f"lm {self.lm!r}: a language model needs the beam decoder")
        if self.beam < 1:
            raise ValueError(f"beam {self.beam}: must be at least 1")
        if self.rule not in decode.RULES:
            raise ValueError(f"rule {self.rule!r}: choose one of {', '.join(decode.RULES)}")
        if self.rule == "emg2qwerty" and (self.kind == "greedy" or self.min_log_prob is not None):
            raise ValueError("rule 'emg2qwerty': a beam decoder without min_log_prob")
        if self.lm not in ("none", "default") and not Path(self.lm).is_file():
            raise FileNotFoundError(f"lm {self.lm}: no such language model file")

    @property
    def name(self) -> str:
        """A short label: "greedy", "beam 50", "beam 50 + LM", "beam 50 + LM (emg2qwerty)"."""
        if self.kind == "greedy":
            return "greedy"
        lm_name = {"none": "", "default": " + LM"}.get(self.lm, f" + LM {Path(self.lm).name}")
        rule = " (emg2qwerty)" if self.rule == "emg2qwerty" else ""
        return f"beam {self.beam}{lm_name}{rule}"

    def settings(self) -> dict[str, Any]:
        """What a result records about its decoder (the beam settings only for beam)."""
        return {"kind": "greedy"} if self.kind == "greedy" else asdict(self)

    def language_model(self) -> lm.CharLM | None:
        """The LM, loaded once per process (a few seconds for the default)."""
        return None if self.lm == "none" else _load_lm(self.lm)

    def __call__(self, log_probs: Tensor) -> str:
        """(frames, classes) log-probabilities of one session -> its text."""
        if self.kind == "greedy":
            return decode.greedy(log_probs[None])[0]
        return decode.beam_search(
            log_probs[None],
            beam=self.beam,
            lm=self.language_model(),
            lm_weight=self.lm_weight,
            insertion_bonus=self.insertion_bonus,
            min_log_prob=self.min_log_prob,
            rule=self.rule,
        )[0]


GREEDY = Decoder()


@functools.cache
def _load_lm(name: str) -> lm.CharLM:
    return lm.default() if name == "default" else lm.CharLM.load(Path(name))
