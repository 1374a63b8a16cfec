"""emg2qwerty's character set: 98 keys plus the CTC blank (99 classes).

Keys are logged by pynput either as characters (``"a"``, ``"?"``) or as names
(``"Key.space"``). Inside label strings every key is one Unicode character, so a
sequence of keys is a plain ``str`` and edit distances work on it directly.

Which logged keys become labels follows emg2qwerty's ``CharacterSet``: the four named keys
below are kept; every other name (``Key.shift_l``, ``Key.shift_r``, ``Key.tab``, ...) is
dropped; a single character outside the set is normalised to ASCII (’ -> ', é -> e,
— -> -) and dropped if that gives no key of the set.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# pynput names -> the single character that stands for the key in label strings.
KEY_TO_CHAR: dict[str, str] = {
    "Key.backspace": "⌫",
    "Key.enter": "⏎",
    "Key.space": " ",
    "Key.shift": "⇧",
}
# Raw characters and typographic forms emg2qwerty substitutes before anything else.
SUBSTITUTIONS: dict[str, str] = {
    "\n": "⏎",
    "\r": "⏎",
    "\b": "⌫",
    "’": "'",
    "“": '"',
    "”": '"',
    "—": "-",
}
# emg2qwerty's icons for keys outside the set (tab, ctrl, cmd, left and right shift):
# they name a key, so they are dropped rather than transliterated.
OTHER_KEY_ICONS = frozenset("⇥⌃⌘↑⇡")
# Single-character ASCII transliterations (unidecode's, which emg2qwerty uses) of the
# punctuation and letters that Unicode decomposition (NFKD) does not reduce to ASCII.
# With NFKD this agrees with emg2qwerty on every character of Latin-1 and Latin Extended-A
# and on the dashes and quotes of General Punctuation; other scripts (Greek, Cyrillic),
# arrows and math symbols, which emg2qwerty transliterates, are dropped here.
TRANSLITERATIONS: dict[str, str] = {
    **dict(zip("¡¦¨¬¯´µ¶·¸¿×÷", "!|\"!-'uP*,?x/", strict=True)),
    **dict(zip("ÐðØøĐđĦħıĸĿŀŁłŦŧ", "DdOoDdHhikLlLlTt", strict=True)),
    **dict(zip("‐‑‒–‗‘‚‛‟†•‧′‵‸‹›‾⁄−", "----_','\"+*.'`^<>-/-", strict=True)),
}


def to_ascii(char: str) -> str | None:
    """One character -> its one-character ASCII form, or None if it has none."""
    decomposed = unicodedata.normalize("NFKD", char)
    base = "".join(c for c in decomposed if not unicodedata.combining(c))
    # é -> e, but ≠ (= plus a combining stroke) is no "=" and ´ (space plus accent) no space
    if len(base) == 1 and base.isascii() and (base.isalnum() or base == decomposed):
        return base
    return TRANSLITERATIONS.get(char)


@dataclass(frozen=True)
class CharacterSet:
    """Letters, digits, punctuation, and backspace/enter/space/shift; blank last."""

    chars: str = field(
        default=string.ascii_letters
        + string.digits
        + string.punctuation
        + "".join(KEY_TO_CHAR.values())
    )

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("CharacterSet: duplicate characters")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @property
    def num_keys(self) -> int:
        return len(self.chars)

    @property
    def num_classes(self) -> int:
        """Keys plus the CTC blank."""
        return len(self.chars) + 1

    @property
    def blank(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._index  # type: ignore[attr-defined]

    def key_to_char(self, key: str) -> str | None:
        """A pynput key name or character -> its label character, or None if not in the set."""
        char = KEY_TO_CHAR.get(key, key)
        if len(char) != 1:  # another pynput name: Key.shift_l, Key.shift_r, Key.tab, ...
            return None
        char = SUBSTITUTIONS.get(char, char)
        if char in self:
            return char
        if char in OTHER_KEY_ICONS:
            return None
        ascii_char = to_ascii(char)
        return ascii_char if ascii_char is not None and ascii_char in self else None

    def char_to_key(self, char: str) -> str:
        """Inverse of :meth:`key_to_char`: the pynput name for special keys."""
        for key, c in KEY_TO_CHAR.items():
            if c == char:
                return key
        return char

    def text_to_labels(self, text: str) -> list[int]:
        """Map a label string (newlines allowed for enter) to class indices."""
        labels = []
        for pos, raw in enumerate(text):
            char = self.key_to_char(raw)
            if char is None:
                raise ValueError(f"character {raw!r} at position {pos} is not in the charset")
            labels.append(self._index[char])  # type: ignore[attr-defined]
        return labels

    def labels_to_text(self, labels: Iterable[int]) -> str:
        """Map class indices back to a label string; the blank is dropped."""
        out = []
        for label in labels:
            label = int(label)
            if label == self.blank:
                continue
            if not 0 <= label < self.num_keys:
                raise ValueError(f"label {label} outside 0..{self.num_classes - 1}")
            out.append(self.chars[label])
        return "".join(out)

    def keys_to_text(self, keys: Sequence[str]) -> str:
        """pynput key names -> label string, skipping keys outside the set."""
        return "".join(c for c in map(self.key_to_char, keys) if c is not None)


CHARSET = CharacterSet()
assert CHARSET.num_classes == 99 and CHARSET.blank == 98
