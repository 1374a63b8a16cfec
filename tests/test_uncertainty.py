"""Intervals and seed spread: known cases of the bootstrap and of `estimate`."""

import math

import pytest

from semgkit.repro.uncertainty import Estimate, bootstrap_interval, columns, estimate, from_row


def test_identical_predictions_and_targets_give_a_zero_width_interval():
    assert bootstrap_interval([0, 0, 0, 0], [12, 30, 7, 50]) == (0.0, 0.0)


def test_equal_rates_in_every_group_give_a_zero_width_interval_at_that_rate():
    assert bootstrap_interval([1, 2, 5], [10, 20, 50]) == pytest.approx((10.0, 10.0))


def test_two_groups_give_the_percentiles_of_their_three_possible_pools():
    """Groups at 0 % and 100 % CER, 10 characters each: a resample pools to 0 % (p=1/4),
    50 % (p=1/2) or 100 % (p=1/4), so the 95 % bounds are 0 and 100 and the central 40 %
    (the 30th to 70th percentiles) is 50 alone."""
    assert bootstrap_interval([0, 10], [10, 10]) == (0.0, 100.0)
    assert bootstrap_interval([0, 10], [10, 10], level=0.4) == (50.0, 50.0)


def test_the_interval_is_seeded():
    edits, chars = [3, 9, 1, 7, 4], [20, 25, 30, 15, 40]
    assert bootstrap_interval(edits, chars, seed=1) == bootstrap_interval(edits, chars, seed=1)
    lo, hi = bootstrap_interval(edits, chars)
    assert lo < 100 * sum(edits) / sum(chars) < hi


@pytest.mark.parametrize(
    ("edits", "chars", "kwargs", "match"),
    [
        ([1, 2], [10], {}, "one length"),
        ([1], [10], {}, "at least 2 groups"),
        ([1, -2], [10, 10], {}, "non-negative"),
        ([0, 0], [0, 0], {}, "some characters"),
        ([1, 2], [10, 10], {"level": 1.5}, "level"),
        ([1, 2], [10, 10], {"resamples": 0}, "resamples"),
    ],
)
def test_bad_input_is_named(edits, chars, kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_interval(edits, chars, **kwargs)


def test_estimate_pools_seeds_and_reports_their_range():
    seed0 = {"u1": {"edits": 2, "chars": 10}, "u2": {"edits": 4, "chars": 10}}
    seed1 = {"u1": {"edits": 4, "chars": 10}, "u2": {"edits": 6, "chars": 10}}
    e = estimate([seed0, seed1])
    assert e.cer == pytest.approx(40.0) and e.seeds == 2
    assert e.seed_range == pytest.approx(20.0)  # 30 % and 50 %
    assert estimate([seed0]).seed_range != estimate([seed0]).seed_range  # NaN: one seed
    assert math.isnan(estimate([{"u1": {"edits": 1, "chars": 4}}]).lo)  # one group
    with pytest.raises(ValueError, match="same groups"):
        estimate([seed0, {"u1": {"edits": 1, "chars": 4}}])


def test_a_row_reads_back_the_estimate_its_columns_wrote_in_any_unit():
    e = Estimate(12.345, 10.0, 15.0, 1.5, 3)
    row = {**columns("pose", e, unit="MAE deg"), "seeds": 3}
    assert from_row(row, "pose", unit="MAE deg") == Estimate(12.35, 10.0, 15.0, 1.5, 3)
