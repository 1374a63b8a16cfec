"""A synthetic typist: prompts typed at a user's pace, with neighbour-key typos corrected
by backspace, as emg2qwerty's keystroke and prompt records."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np

from semgkit.charset import CHARSET
from semgkit.synth_signal import ROWS, UNSHIFT, User

ASSET = Path(__file__).resolve().parent / "assets" / "prompts.txt"


def load_prompts() -> list[str]:
    """The prompts the typist copies (one a line; ``#`` lines are comments)."""
    lines = ASSET.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def needs_shift(char: str) -> bool:
    """Whether typing ``char`` holds shift (capitals and shifted symbols)."""
    return char in string.ascii_uppercase or char in UNSHIFT


def type_session(
    user: User, prompts: list[str], duration_s: float, rng: np.random.Generator
) -> tuple[list[dict], list[dict]]:
    """Keystrokes and prompts (emg2qwerty's JSON records, times relative to 0)."""
    keystrokes: list[dict] = []
    prompt_log: list[dict] = []
    t = 0.5
    end_by = duration_s - 1.0

    def press(char: str, t: float) -> float:
        hold = user.hold_s * float(np.exp(0.2 * rng.standard_normal()))
        if needs_shift(char):
            keystrokes.append({"key": "Key.shift", "start": t - 0.06, "end": t + hold + 0.03})
        key = CHARSET.char_to_key(char)
        keystrokes.append({"key": key, "start": t, "end": t + hold})
        return t + user.iki_s * float(np.exp(user.iki_sigma * rng.standard_normal()))

    while t < end_by:
        text = prompts[int(rng.integers(len(prompts)))]
        start = t
        for char in text:
            if t >= end_by:
                break
            if rng.random() < user.typo_rate and char.isalpha():
                t = press(_neighbour(char, rng), t)
                t = press("⌫", t + 0.15)
            t = press(char, t)
        else:
            t = press("⏎", t)
        prompt_log.append(
            {"name": "text_prompt", "start": start - 0.3, "end": t, "payload": {"text": text}}
        )
        t += float(rng.uniform(0.8, 1.6))
    keystrokes.sort(key=lambda k: k["start"])
    return keystrokes, prompt_log


def _neighbour(char: str, rng: np.random.Generator) -> str:
    row = next(r for r in ROWS[1:] if char.lower() in r)
    col = row.index(char.lower())
    options = [row[c] for c in (col - 1, col + 1) if 0 <= c < len(row) and row[c].isalpha()]
    return str(rng.choice(options)) if options else char.lower()
