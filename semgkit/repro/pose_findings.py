"""Chapter 8's findings: the paper's scaling and distillation claims asked of hand pose,
each with its verdict (`claims`), read from the tables of
:mod:`semgkit.repro.pose_experiments`."""

from __future__ import annotations

from itertools import pairwise

import pandas as pd

from semgkit.repro.claims import every, judge, steps
from semgkit.repro.pose_experiments import mae_estimate, setting
from semgkit.repro.profiles import Profile
from semgkit.repro.uncertainty import Estimate, describe


def scaling_findings(P: Profile, table: pd.DataFrame) -> list[str]:
    """The scaling claims asked of pose, each with its verdict (`claims`) from ``table``."""
    m = setting(P)
    rows = table.sort_values("parameters")
    small, large = rows.iloc[0], rows.iloc[-1]
    big, little = mae_estimate(large, m), mae_estimate(small, m)
    each = steps([mae_estimate(r, m) for _, r in rows.iterrows()])
    told = [f"{a} -> {b} {v}" for (a, b), v in zip(pairwise(rows["preset"]), each, strict=True)]
    lines = [
        f"The largest model ({large['preset']}) has a lower {m} angle error than the smallest "
        f"({small['preset']}): {judge(big, little)} ({describe(big)} against "
        f"{describe(little)} degrees).",
        f"The {m} error falls at every step up the ladder: {every(each)} ({'; '.join(told)}).",
    ]
    if "personalized MAE deg" in rows:
        tuned = mae_estimate(large, "personalized")
        lines.append(
            f"Fine-tuning {large['preset']} on a held-out user's own stages gives a lower error "
            f"(on the first {int(large['personalized users'])} held-out user(s)) than the "
            f"{m} error (all of them): {judge(tuned, big)} "
            f"({describe(tuned)} against {describe(big)} degrees)."
        )
    return lines


def baseline_findings(P: Profile, table: pd.DataFrame, mean_pose: Estimate) -> list[str]:
    """Whether each ladder model beats the mean training pose (a model ignoring the sEMG)."""
    m, lines = setting(P), []
    for _, row in table.iterrows():
        e = mae_estimate(row, m)
        lines.append(
            f"{row['preset']} has a lower {m} error than the mean training pose: "
            f"{judge(e, mean_pose)} ({describe(e)} against {describe(mean_pose)} degrees)."
        )
    return lines


def distillation_findings(P: Profile, table: pd.DataFrame, sweep: pd.DataFrame) -> list[str]:
    """The distillation claims asked of pose, each with its verdict (`claims`)."""
    m = setting(P)
    rows = {r["role"]: r for _, r in table.iterrows()}
    teacher, alone = mae_estimate(rows["teacher"], m), mae_estimate(rows["student alone"], m)
    distilled = mae_estimate(rows["student distilled"], m)
    ratio = rows["student distilled"]["size ratio"]
    best_row = sweep.loc[sweep[f"{m} MAE deg"].idxmin()]
    best = mae_estimate(best_row, m)
    return [
        f"The distilled student ({ratio:g}x fewer parameters than its teacher) has a lower "
        f"{m} error than the student alone: {judge(distilled, alone)} "
        f"({describe(distilled)} against {describe(alone)} degrees).",
        f"The distilled student has a lower {m} error than its teacher: "
        f"{judge(distilled, teacher)} ({describe(teacher)} degrees for the teacher).",
        f"Over the mixing weights {list(sweep['alpha'])}, the lowest {m} error is at alpha "
        f"{best_row['alpha']:g}: {describe(best)} degrees; below the student alone: "
        f"{judge(best, alone)}.",
    ]
