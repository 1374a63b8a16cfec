"""Error rates on hand-computed examples, and greedy CTC decoding of built emissions."""

import math

import pandas as pd
import pytest
import torch

from semgkit.charset import CHARSET
from semgkit.decode import collapse, greedy
from semgkit.metrics import edit_counts, error_rates, per_user

BLANK = CHARSET.blank


def approx(rates: dict[str, float]) -> dict:
    return {k: pytest.approx(v) for k, v in rates.items()}


# --- error rates -------------------------------------------------------------------------


def test_perfect_prediction():
    assert error_rates(["hello", "⇧Hi⏎"], ["hello", "⇧Hi⏎"]) == {
        "CER": 0.0,
        "IER": 0.0,
        "DER": 0.0,
        "SER": 0.0,
    }


# emg2qwerty's CharacterErrorRates counts the edits turning the prediction into the target:
# a key the model missed must be inserted, an extra predicted key must be deleted.


def test_empty_prediction_is_all_insertions():
    assert error_rates([""], ["abc"]) == approx(
        {"CER": 100.0, "IER": 100.0, "DER": 0.0, "SER": 0.0}
    )
    assert edit_counts("", "abc") == dict(insertions=3, deletions=0, substitutions=0, chars=3)


def test_missed_keys_are_insertions():
    assert error_rates(["ac"], ["abcd"]) == approx(
        {"CER": 50.0, "IER": 50.0, "DER": 0.0, "SER": 0.0}
    )


def test_an_extra_predicted_key_is_a_deletion():
    assert error_rates(["abcd"], ["abc"]) == approx(
        {"CER": 100 / 3, "IER": 0.0, "DER": 100 / 3, "SER": 0.0}
    )
    assert edit_counts("abcd", "abc")["deletions"] == 1


def test_pure_substitution():
    assert error_rates(["abx"], ["abc"]) == approx(
        {"CER": 100 / 3, "IER": 0.0, "DER": 0.0, "SER": 100 / 3}
    )


def test_minimal_alignment_kitten_sitting():
    # predicted "sitting" for "kitten": s->k, i->e substituted, the extra g deleted
    assert error_rates(["sitting"], ["kitten"]) == approx(
        {"CER": 50.0, "IER": 0.0, "DER": 100 / 6, "SER": 100 / 3}
    )
    assert edit_counts("sitting", "kitten") == {
        "insertions": 0,
        "deletions": 1,
        "substitutions": 2,
        "chars": 6,
    }


def test_cer_can_exceed_100_and_is_the_sum_of_its_parts():
    r = error_rates(["xxxxxx", "a b"], ["ab", "a⌫b"])
    assert r["CER"] == pytest.approx(r["IER"] + r["DER"] + r["SER"])
    assert error_rates(["xxxx"], ["a"])["CER"] == pytest.approx(400.0)


def test_pooling_is_total_edits_over_total_characters():
    predictions, targets = ["", "abcdefghij"], ["a", "abcdefghij"]
    pooled = error_rates(predictions, targets)
    assert pooled["CER"] == pytest.approx(100 / 11)  # 1 edit over 11 characters
    assert pooled["IER"] == pytest.approx(100 / 11)  # the missed "a" is inserted
    mean_of_pairs = (
        sum(error_rates([p], [t])["CER"] for p, t in zip(predictions, targets, strict=True)) / 2
    )
    assert mean_of_pairs == pytest.approx(50.0)  # what pooling deliberately is not


def test_empty_target_counts_deletions_against_other_pairs():
    r = error_rates(["xy", "abcd"], ["", "abcd"])
    assert r == approx({"CER": 50.0, "IER": 0.0, "DER": 50.0, "SER": 0.0})


@pytest.mark.parametrize("predictions, targets", [(["xy"], [""]), ([""], [""]), ([], [])])
def test_no_ground_truth_at_all_gives_nan(predictions, targets):
    r = error_rates(predictions, targets)
    assert set(r) == {"CER", "IER", "DER", "SER"}
    assert all(math.isnan(v) for v in r.values())


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        error_rates(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="same length"):
        per_user(["a"], ["a"], ["u1", "u2"])


def test_per_user_rows_pool_each_users_pairs():
    df = per_user(
        ["abc", "", "abcd", "xy"],
        ["abc", "a", "abc", "xz"],
        ["u2", "u1", "u2", "u1"],
    )
    assert isinstance(df, pd.DataFrame)
    assert df["user"].tolist() == ["u1", "u2"]
    u1, u2 = df.set_index("user").loc["u1"], df.set_index("user").loc["u2"]
    # u1: one insertion (the missed "a") and one substitution (y->z) over 3 characters
    assert (u1["insertions"], u1["substitutions"], u1["deletions"], u1["chars"]) == (1, 1, 0, 3)
    assert u1["CER"] == pytest.approx(200 / 3)
    # u2: one deletion (the extra "d") over 6 characters
    assert (u2["deletions"], u2["chars"]) == (1, 6)
    assert u2["CER"] == pytest.approx(100 / 6) and u2["DER"] == pytest.approx(100 / 6)
    overall = error_rates(["abc", "", "abcd", "xy"], ["abc", "a", "abc", "xz"])
    assert overall["CER"] == pytest.approx(100 * 3 / 9)


# --- decoding ----------------------------------------------------------------------------


def labels(text: str) -> list[int]:
    return CHARSET.text_to_labels(text)


def test_collapse_merges_repeats_and_drops_blanks():
    a, b = labels("ab")
    assert collapse([a, a, a]) == [a]
    assert collapse([a, BLANK, a]) == [a, a]  # a repeat separated by blank is two keys
    assert collapse([BLANK, a, a, BLANK, BLANK, b, b, BLANK]) == [a, b]
    assert collapse([BLANK, BLANK]) == []
    assert collapse([]) == []


def test_collapse_continues_across_a_window_edge():
    a, b = labels("ab")
    assert collapse([a, b], previous=a) == [b]
    assert collapse([a, b], previous=BLANK) == [a, b]


def emissions(rows: list[list[int]], frames: int) -> torch.Tensor:
    """(B, frames, 99) log-probabilities whose argmax is the given label path (blank after)."""
    out = torch.full((len(rows), frames, CHARSET.num_classes), -10.0)
    out[:, :, BLANK] = -0.01
    for i, row in enumerate(rows):
        for t, label in enumerate(row):
            out[i, t, BLANK] = -10.0
            out[i, t, label] = -0.01
    return out


def test_greedy_decodes_paths():
    h, e, ell, o, sp, bs = labels("helo ⌫")
    paths = [
        [h, h, e, BLANK, ell, ell, BLANK, ell, o],  # "hello": the double l needs a blank between
        [sp, sp, BLANK, bs, bs, bs],
        [],
    ]
    assert greedy(emissions(paths, 12)) == ["hello", " ⌫", ""]


def test_greedy_respects_lengths():
    h, i = labels("hi")
    log_probs = emissions([[h, BLANK, i, i, h], [i, h, i]], 6)
    assert greedy(log_probs, torch.tensor([2, 2])) == ["h", "ih"]
    assert greedy(log_probs, torch.tensor([3, 3]))[0] == "hi"
    assert greedy(log_probs, torch.tensor([5, 6])) == ["hih", "ihi"]
    assert greedy(log_probs, torch.tensor([0, 1])) == ["", "i"]


def test_greedy_output_scores_against_targets():
    a, b, c = labels("abc")
    decoded = greedy(emissions([[a, b, c], [a, BLANK, c]], 4))
    assert error_rates(decoded, ["abc", "abc"])["IER"] == pytest.approx(100 / 6)
