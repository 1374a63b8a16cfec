"""The claims the book makes from Tables 2 and 3, computed from the tables themselves.

Each claim ends with a verdict ("holds", "does not hold", "within noise") judged against
the rows' intervals and seed spread (`uncertainty.judge`), so the prose never states a
result the run did not give. Presentation only: outside the run and bench cache keys.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd

from semgkit import paper
from semgkit.data import Session, load_split
from semgkit.repro.paper_tables import cer_column, measure_of
from semgkit.repro.profiles import Profile
from semgkit.repro.recipes import prepare_corpus
from semgkit.repro.schedule import TABLE2_DECODERS, TABLE2_EMG2QWERTY
from semgkit.repro.uncertainty import describe, from_row, judge


def _overall(verdicts: list[str]) -> str:
    """A claim made of several steps: refuted by any step, held only if every step holds."""
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "within noise"


def _one_seed_note(table: pd.DataFrame) -> list[str]:
    """What a verdict on a one-seed row leaves out: the seed's own noise is unmeasured."""
    single = int((table["seeds"] < 2).sum())
    if not single:
        return []
    return [
        f"{single} of {len(table)} rows come from one training seed: their verdicts weigh "
        "the test users' noise only, not the training seed's, which can be larger (see the "
        "introduction's Reproducibility section)"
    ]


def scaling_findings(table: pd.DataFrame) -> list[str]:
    """Table 2's claims judged against its intervals and seed spread: each line ends its
    claim with "holds", "does not hold" or "within noise" (see `uncertainty.judge`)."""
    ladder = [
        r for _, r in table[table["family"] == "transformer"].sort_values("parameters").iterrows()
    ]
    m, out = measure_of(table), []
    if len(ladder) > 1:
        cross = [from_row(r, m) for r in ladder]
        steps = [judge(b, a) for a, b in pairwise(cross)]
        rho = pd.Series([e.cer for e in cross]).corr(
            pd.Series(np.log([r["parameters"] for r in ladder])), method="spearman"
        )
        out.append(
            f"{m} CER falls from the smallest to the largest transformer: "
            f"{judge(cross[-1], cross[0])} ({describe(cross[0])} -> {describe(cross[-1])})"
        )
        out.append(
            f"it falls at every step of the ladder: {_overall(steps)} ("
            + "; ".join(
                f"{a['preset']} -> {b['preset']} {v}"
                for (a, b), v in zip(pairwise(ladder), steps, strict=True)
            )
            + f"; Spearman rho with log-parameters {rho:+.2f})"
        )
    rows = [r for _, r in table.iterrows()]
    if "personalized CER %" in table:
        verdicts = [judge(from_row(r, "personalized"), from_row(r, m)) for r in rows]
        gaps = (table[f"{m} CER %"] - table["personalized CER %"]).to_numpy()
        out.append(
            f"personalization lowers CER: holds for {verdicts.count('holds')} of {len(rows)} "
            f"models, within noise for {verdicts.count('within noise')}, does not hold for "
            f"{verdicts.count('does not hold')} (mean gain {gaps.mean():.1f} points)"
        )
    tds = [r for r in rows if r["family"] == "tds"]
    if tds and ladder:
        t = tds[0]
        logs = [abs(np.log(r["parameters"]) - np.log(t["parameters"])) for r in ladder]
        near = ladder[int(np.argmin(logs))]
        a, b = from_row(near, m), from_row(t, m)
        out.append(
            f"the transformer closest in size ({near['preset']}, {near['parameters']:,} params, "
            f"{describe(a)}) beats the TDS-ConvNet ({t['parameters']:,} params, {describe(b)}) "
            f"{m}: {judge(a, b)}"
        )
    return out + _one_seed_note(table)


def decoder_findings(table: pd.DataFrame) -> list[str]:
    """What beam search, and the LM on top of it, changed in Table 2, computed from it."""
    out, settings = [], [measure_of(table), "personalized"]
    for new, old in [("beam", "greedy"), ("beam+LM", "beam")]:
        for setting in [s for s in settings if f"{s} CER %" in table]:
            delta = (table[cer_column(setting, new)] - table[cer_column(setting, old)]).to_numpy()
            out.append(
                f"{new} against {old}, {setting}: CER lower for {int((delta < 0).sum())} of "
                f"{len(delta)} models, higher for {int((delta > 0).sum())} (mean change "
                f"{delta.mean():+.1f} points, from {delta.min():+.1f} to {delta.max():+.1f})"
            )
    m = settings[0]
    for name in TABLE2_EMG2QWERTY:
        delta = table[cer_column(m, name)] - table[cer_column(m, "beam+LM")]
        out.append(
            f"{name} against semgkit's rule (beam+LM), {m}: CER lower for "
            f"{int((delta < 0).sum())} of {len(delta)} models, higher for {int((delta > 0).sum())} "
            f"(mean change {delta.mean():+.2f} points, from {delta.min():+.2f} to {delta.max():+.2f})"
        )
    for name in [*TABLE2_DECODERS, *TABLE2_EMG2QWERTY]:
        speed = table[f"{name} CPU s per sEMG min"]
        out.append(
            f"{name} decoding: {speed.median():.1f} CPU s per minute of sEMG (median over models, "
            f"slowest {speed.max():.1f}; CPU time of one thread)"
        )
    return out


def sweep_finding(sweep: pd.DataFrame, knob: str) -> str:
    """Does the sweep's setting matter? Its best point judged against its worst."""
    m = measure_of(sweep)
    ranked = sweep.sort_values(f"{m} CER %")
    best, worst = ranked.iloc[0], ranked.iloc[-1]
    a, b = from_row(best, m), from_row(worst, m)
    return (
        f"the best {knob} ({best[knob]:g}: {describe(a)}) beats the worst "
        f"({worst[knob]:g}: {describe(b)}): {judge(a, b)}"
    )


def distillation_findings(
    table3: pd.DataFrame, sweeps: dict[str, pd.DataFrame] | None = None
) -> list[str]:
    """Table 3's claims judged against its intervals and seed spread ("holds", "does not
    hold", "within noise"); ``sweeps`` ({"temperature": table, "alpha": table}) adds
    whether each knob's best setting beats its worst (for sweeps of two settings or more)."""
    rows, m = {r["role"]: r for _, r in table3.iterrows()}, measure_of(table3)
    t, s, k = (from_row(rows[r], m) for r in ("teacher", "student alone", "student distilled"))
    ratio = rows["teacher"]["parameters"] / rows["student alone"]["parameters"]
    out = [
        f"teacher/student parameter ratio: {ratio:.0f}x (paper: ~{paper.SIZE_RATIO}x)",
        f"{m} CER % [95% interval]: teacher {describe(t)}, student alone {describe(s)}, "
        f"distilled {describe(k)}",
        f"the distilled student is within {paper.DISTILL_GAP} points of the teacher: "
        f"{judge(k, t, margin=paper.DISTILL_GAP)} ({k.cer - t.cer:+.1f} points)",
        f"distillation beats training the student alone: {judge(k, s)} ({s.cer - k.cer:+.1f} points)",
    ]
    if judge(t, s) == "holds":
        closed = (s.cer - k.cer) / (s.cer - t.cer)
        out.append(f"distillation closes {100 * closed:.0f} % of the teacher-student gap")
    else:
        out.append(
            f"the teacher beats the student alone: {judge(t, s)}, so the share of the gap "
            "that distillation closes is not reported"
        )
    out += [sweep_finding(t, knob) for knob, t in (sweeps or {}).items() if t[knob].nunique() > 1]
    return out + _one_seed_note(pd.concat([table3, *(sweeps or {}).values()]))


def protocol_note(P: Profile) -> str:
    """What the profile's tables measure, on which data, and whether the paper's numbers
    are comparable: printed above Tables 2 and 3 so no reader takes one for the other."""
    root = prepare_corpus(P)
    split = load_split(root, P.corpus.split)
    data = (
        f"the synthetic corpus {P.corpus.preset!r}"
        if P.corpus.source == "synthetic"
        else f"real emg2qwerty data in {root}"
    )
    users = sorted({Session(p).user for p in split.train})
    head = f"Profile {P.name}, {data}, split {P.corpus.split!r}"
    if P.measure() == "single-user":
        return (
            f"{head}: every model is trained from scratch on user {', '.join(users)}'s "
            f"{len(split.train)} training sessions and tested on that user's own "
            f"{len(split.test)} held-out test session(s): emg2qwerty's personalized-from-"
            "scratch setting. The paper reports no number for it, so no paper column is "
            "shown; with one test user there is no between-user interval (the CI columns are "
            "empty) and verdicts weigh the seed spread only."
        )
    tested = len(set(split.test_users))
    if P.paper_protocol():
        return (
            f"{head}: trained on {len(users)} users, tested on {tested} unseen users' whole "
            "test sessions, each then fine-tuned on that user's own sessions: the paper's "
            "protocol, so its numbers sit beside the measured ones"
            + (" (for direction only: synthetic data)." if P.corpus.source == "synthetic" else ".")
        )
    return (
        f"{head}: trained on {len(users)} users (the paper: {paper.TRAIN_USERS}), tested on "
        f"{tested} unseen users' whole test sessions, each then fine-tuned on that user's own "
        "sessions: the paper's cross-user protocol in miniature. With fewer training users "
        "the paper's numbers are not comparable and are not shown."
    )
