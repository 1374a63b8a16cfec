"""Which logged keys become labels: emg2qwerty's CharacterSet rules on hand-built keys."""

import pytest

from semgkit.charset import CHARSET, to_ascii


def test_size_and_blank():
    assert CHARSET.num_keys == 98 and CHARSET.num_classes == 99 and CHARSET.blank == 98


@pytest.mark.parametrize(
    "key, char",
    [
        ("Key.backspace", "⌫"),
        ("Key.enter", "⏎"),
        ("Key.space", " "),
        ("Key.shift", "⇧"),  # emg2qwerty keeps the plain shift as a class
        ("a", "a"),
        ("Z", "Z"),
        ("?", "?"),
        (" ", " "),
        ("\n", "⏎"),
        ("\r", "⏎"),
        ("\b", "⌫"),
        ("⏎", "⏎"),
        ("⌫", "⌫"),
        ("⇧", "⇧"),
    ],
)
def test_kept_keys(key, char):
    assert CHARSET.key_to_char(key) == char


@pytest.mark.parametrize(
    "key",
    [
        "Key.shift_l",  # emg2qwerty drops the sided shifts instead of mapping them to ⇧
        "Key.shift_r",
        "Key.tab",
        "Key.ctrl",
        "Key.alt",
        "Key.caps_lock",
        "\t",
        "⇥",  # icons of keys outside the set: tab, ctrl, cmd, left and right shift
        "⌃",
        "⌘",
        "↑",
        "⇡",
        "…",  # transliterates to three characters
        "ß",  # to two
        "€",
        "中",
    ],
)
def test_dropped_keys(key):
    assert CHARSET.key_to_char(key) is None


@pytest.mark.parametrize(
    "key, char",
    [
        ("’", "'"),
        ("‘", "'"),
        ("“", '"'),
        ("”", '"'),
        ("—", "-"),
        ("–", "-"),
        ("é", "e"),
        ("É", "E"),
        ("ñ", "n"),
        ("ü", "u"),
        ("ø", "o"),
        ("ł", "l"),
        ("×", "x"),
        ("´", "'"),  # a spacing accent is an apostrophe, not a space
        ("\u00a0", " "),  # no-break space
        ("Ａ", "A"),  # fullwidth
    ],
)
def test_unicode_keys_are_normalised_to_ascii(key, char):
    assert CHARSET.key_to_char(key) == char


def test_to_ascii_keeps_marks_that_change_a_symbol():
    assert to_ascii("≠") is None  # "=" with a combining stroke is not "="
    assert to_ascii("e") == "e"


def test_keys_to_text_and_labels_follow_the_same_rules():
    keys = ["Key.shift", "H", "Key.shift_r", "i", "’", "s", "Key.space", "c", "a", "f", "é"]
    assert CHARSET.keys_to_text(keys) == "⇧Hi's cafe"
    text = "It’s “ok”\n"
    assert CHARSET.labels_to_text(CHARSET.text_to_labels(text)) == 'It\'s "ok"⏎'
    with pytest.raises(ValueError, match="position 0"):
        CHARSET.text_to_labels("…")
