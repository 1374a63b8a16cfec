"""Claims and their verdicts: the one rule (`claims.judge`, `claims.every`), the boxes,
and Tables 2 and 3's findings and forecasts phrasing the same judgement."""

import math

import pandas as pd
import pytest

from semgkit.repro import claims, findings
from semgkit.repro.claims import Claim, every, judge, steps
from semgkit.repro.uncertainty import Estimate, columns


def both(cross, personal, spread=5.0):
    """Cross-user and personalized columns of one row, one seed, intervals +- spread."""
    return {
        **columns("cross-user", Estimate(cross, cross - spread, cross + spread, math.nan, 1)),
        **columns(
            "personalized", Estimate(personal, personal - spread, personal + spread, math.nan, 1)
        ),
    }


def row(family, preset, params, cross, personal, spread=0.5):
    return {"family": family, "preset": preset, "parameters": params, "seeds": 1} | both(
        cross, personal, spread
    )


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
    models = [("s", 1000, 80, 60), ("l", 100000, 50, 48), ("tds", 90000, 49, 40)]
    table = pd.DataFrame(
        [
            {**row, "preset": p, "parameters": n, **both(cross, personal)}
            for p, n, cross, personal in models
        ]
    )
    table.loc[2, "family"] = "tds"
    lines = findings.scaling_findings(table)
    assert lines[0].startswith("cross-user CER falls") and lines[0].endswith(
        "holds (80.0 [75.0, 85.0] -> 50.0 [45.0, 55.0])"
    )
    assert lines[2].startswith("personalization lowers CER for every model: within noise (holds")
    assert "holds for 1 of 3 models, within noise for 2, does not hold for 0" in lines[2]
    assert "beats the TDS-ConvNet (90,000 params), cross-user: within noise (l 50.0" in lines[3]
    assert lines[4].startswith("3 of 3 rows come from one training seed")


def test_distillation_findings_judge_table3_and_the_sweeps():
    def row(role, parameters, e, **extra):
        base = {"role": role, "parameters": parameters, "seeds": e.seeds}
        return {**base, **extra, **columns("cross-user", e)}

    table3 = pd.DataFrame(
        [
            row("teacher", 50000, Estimate(40, 37, 43, math.nan, 1)),
            row("student alone", 1000, Estimate(70, 66, 74, 2.0, 3)),
            row("student distilled", 1000, Estimate(64, 60, 68, 5.0, 3)),
        ]
    )
    temps = pd.DataFrame(
        [
            row("student distilled", 1000, Estimate(64.6, 61, 68, math.nan, 1), temperature=2.0),
            row("student distilled", 1000, Estimate(67.0, 63, 71, math.nan, 1), temperature=8.0),
        ]
    )
    alphas = temps.iloc[:1].assign(alpha=0.5)  # one setting: nothing to compare
    lines = findings.distillation_findings(table3, {"temperature": temps, "alpha": alphas})
    assert lines[0].startswith("teacher/student parameter ratio: 50x")
    assert lines[2].endswith("teacher: does not hold (+24.0 points)")
    assert lines[3] == "distillation beats training the student alone: within noise (+6.0 points)"
    assert lines[4] == "distillation closes 20 % of the teacher-student gap"
    assert lines[5].startswith("the best temperature (2: 64.6 [61.0, 68.0])")
    assert lines[5].endswith("within noise")
    assert lines[6].startswith("4 of 6 rows come from one training seed")


def test_a_claim_of_several_is_refuted_by_any_part_and_held_only_by_all():
    assert every(["holds", "holds"]) == "holds"
    assert every(["holds", "within noise"]) == "within noise"
    assert every(["holds", "within noise", "does not hold"]) == "does not hold"
    a, b, c = (Estimate(x, x - 1, x + 1, math.nan, 1) for x in (60.0, 40.0, 39.5))
    assert steps([a, b, c]) == ["holds", "within noise"]


def test_a_negated_claim_gets_the_opposite_verdict_of_the_same_judgement():
    c = Claim("a beats b", "holds", "m")
    assert c.negated("b beats a") == Claim("b beats a", "does not hold", "m")
    assert c.negated("x").negated("a beats b") == c
    assert Claim("x", "within noise", "m").negated("y").verdict == "within noise"
    assert Claim("x", True, "m").negated("y").verdict is False
    a, b = Estimate(40, 38, 42, math.nan, 1), Estimate(50, 48, 52, math.nan, 1)
    assert judge(b, a, margin=-5) == claims.OPPOSITE[judge(a, b, margin=5)]


def test_the_box_shows_each_claims_verdict():
    box = claims.box("What to expect", [Claim("x", "does not hold", "m"), Claim("y", None, "m")])
    assert "✗ does not hold" in box.data and "not testable in this run" in box.data
    assert "✓" in claims.box("The paper reports", [Claim("x", True, "m")]).data
    with pytest.raises(KeyError):
        claims.mark("maybe")


def test_scaling_forecasts_are_the_findings_judgement():
    table = pd.DataFrame(
        [
            row("transformer", "a", 10_000, 80.0, 70.0),
            row("transformer", "b", 100_000, 60.0, 60.2),  # personalization within noise here
            row("tds", "t", 120_000, 50.0, 40.0),
        ]
    )
    verdicts = {c.text.split()[0]: c.verdict for c in findings.scaling_forecasts(table)}
    assert verdicts == {"Cross-user": "holds", "Personalization": "within noise", "The": "holds"}
    lines = findings.scaling_findings(table)
    assert lines[2].startswith("personalization lowers CER for every model: within noise")
    assert "beats the TDS-ConvNet (120,000 params), cross-user: does not hold" in lines[3]


def test_distillation_forecasts_follow_the_gap():
    def r(role, cer):
        return {"role": role, **row("transformer", role, 1, cer, cer)}

    table = pd.DataFrame(
        [r("teacher", 40.0), r("student alone", 70.0), r("student distilled", 55.0)]
    )
    beats, behind = findings.distillation_forecasts(table)
    assert (beats.verdict, behind.verdict) == ("holds", "holds")
    assert findings.distillation_findings(table)[2].endswith(
        "teacher: does not hold (+15.0 points)"
    )
    table.loc[2, ["cross-user CER %", "cross-user CI95 lo", "cross-user CI95 hi"]] = [
        80,
        79.5,
        80.5,
    ]
    assert findings.distillation_forecasts(table)[0].verdict == "does not hold"


def test_decoder_forecasts_compare_the_lm_change_by_setting_and_size():
    table = pd.DataFrame(
        [row("transformer", "a", 10_000, 80.0, 70.0), row("transformer", "b", 1e5, 60.0, 50.0)]
    )
    for setting in ("cross-user", "personalized"):
        table[f"{setting} CER % beam"] = table[f"{setting} CER %"]
    table["cross-user CER % beam+LM"] = [79.0, 61.0]  # helps the small one only
    table["personalized CER % beam+LM"] = [65.0, 45.0]  # helps both by 5
    personal, size = findings.decoder_forecasts(table)
    assert personal.verdict is True and size.verdict is False


def test_size_ratio_is_quoted_as_the_prose_does():
    assert findings.ratio(530, 10) == "53x" and findings.ratio(25, 10) == "2.5x"
