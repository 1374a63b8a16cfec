"""emg2qwerty's character set: 98 keys plus the CTC blank (99 classes).

Keys are logged by pynput either as characters (``"a"``, ``"?"``) or as names
(``"Key.space"``). Inside label strings every key is one Unicode character, so a
sequence of keys is a plain ``str`` and edit distances work on it directly.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# pynput names -> the single character that stands for the key in label strings.
KEY_TO_CHAR: dict[str, str] = {
    "Key.backspace": "⌫",
    "Key.enter": "⏎",
    "Key.space": " ",
    "Key.shift": "⇧",
}
# Aliases seen in real recordings, normalised to the names above.
KEY_ALIASES: dict[str, str] = {
    "Key.shift_l": "Key.shift",
    "Key.shift_r": "Key.shift",
    "\n": "Key.enter",
    "\r": "Key.enter",
    "\b": "Key.backspace",
    " ": "Key.space",
}


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
        key = KEY_ALIASES.get(key, key)
        char = KEY_TO_CHAR.get(key, key)
        return char if len(char) == 1 and char in self else None

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
