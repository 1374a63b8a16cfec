"""Intervals, seed spread and verdicts: known cases of the bootstrap and of `judge`."""

import math

import pandas as pd
import pytest

from semgkit.repro import findings
from semgkit.repro.uncertainty import Estimate, bootstrap_interval, columns, estimate, judge


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


def test_judge_calls_overlapping_intervals_within_noise():
    a = Estimate(40.0, 36.0, 44.0, math.nan, 1)
    b = Estimate(43.0, 39.0, 47.0, math.nan, 1)
    assert judge(a, b) == "within noise"
    far = Estimate(60.0, 55.0, 65.0, math.nan, 1)
    assert judge(a, far) == "holds" and judge(far, a) == "does not hold"
    assert judge(a, far, margin=-30) == "does not hold"  # 40 is not below 60 - 30
    spread = Estimate(60.0, 55.0, 65.0, 25.0, 3)  # seeds 25 points apart
    assert judge(a, spread) == "within noise"


def test_a_finding_is_within_noise_when_the_intervals_overlap():
    """Table 2's findings from a hand-built table: the TDS comparison overlaps."""
    row = {"family": "transformer", "peak lr": 1e-3, "seeds": 1}
    table = pd.DataFrame(
        [
            {**row, "preset": "s", "parameters": 1000,
             **columns("cross-user", Estimate(80, 75, 85, math.nan, 1)),
             **columns("personalized", Estimate(60, 55, 65, math.nan, 1))},
            {**row, "preset": "l", "parameters": 100000,
             **columns("cross-user", Estimate(50, 45, 55, math.nan, 1)),
             **columns("personalized", Estimate(48, 44, 52, math.nan, 1))},
            {**row, "family": "tds", "preset": "tds", "parameters": 90000,
             **columns("cross-user", Estimate(49, 44, 54, math.nan, 1)),
             **columns("personalized", Estimate(40, 35, 45, math.nan, 1))},
        ]
    )  # fmt: skip
    lines = findings.scaling_findings(table)
    assert lines[0].startswith("cross-user CER falls") and lines[0].endswith(
        "holds (80.0 [75.0, 85.0] -> 50.0 [45.0, 55.0])"
    )
    assert "holds for 1 of 3 models, within noise for 2, does not hold for 0" in lines[2]
    assert lines[3].endswith("cross-user: within noise")
    assert lines[4].startswith("3 of 3 rows come from one training seed")


def test_distillation_findings_judge_table3_and_the_sweeps():
    def row(role, parameters, e, **extra):
        return {"role": role, "parameters": parameters, "seeds": e.seeds, **extra,
                **columns("cross-user", e)}  # fmt: skip

    table3 = pd.DataFrame([
        row("teacher", 50000, Estimate(40, 37, 43, math.nan, 1)),
        row("student alone", 1000, Estimate(70, 66, 74, 2.0, 3)),
        row("student distilled", 1000, Estimate(64, 60, 68, 5.0, 3)),
    ])  # fmt: skip
    temps = pd.DataFrame([
        row("student distilled", 1000, Estimate(64.6, 61, 68, math.nan, 1), temperature=2.0),
        row("student distilled", 1000, Estimate(67.0, 63, 71, math.nan, 1), temperature=8.0),
    ])  # fmt: skip
    alphas = temps.iloc[:1].assign(alpha=0.5)  # one setting: nothing to compare
    lines = findings.distillation_findings(table3, {"temperature": temps, "alpha": alphas})
    assert lines[0].startswith("teacher/student parameter ratio: 50x")
    assert lines[2].endswith("teacher: does not hold (+24.0 points)")
    assert lines[3] == "distillation beats training the student alone: within noise (+6.0 points)"
    assert lines[4] == "distillation closes 20 % of the teacher-student gap"
    assert lines[5].startswith("the best temperature (2: 64.6 [61.0, 68.0])")
    assert lines[5].endswith("within noise")
    assert lines[6].startswith("4 of 6 rows come from one training seed")
