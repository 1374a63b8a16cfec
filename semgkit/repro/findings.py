"""The claims the book makes from Tables 2 and 3, phrased: lines under the tables and
the chapters' forecast boxes.

Each claim is judged once, in :mod:`semgkit.repro.claims` (intervals and seed spread), so
a line and a forecast about the same effect cannot disagree, and the prose never states
a result the run did not give. Presentation only: outside the run and bench cache keys.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from semgkit import paper
from semgkit.data import Session, load_split
from semgkit.repro import claims
from semgkit.repro.claims import Claim, judge
from semgkit.repro.paper_tables import cer_column, measure_of
from semgkit.repro.profiles import Profile
from semgkit.repro.recipes import prepare_corpus
from semgkit.repro.schedule import TABLE2_DECODERS, TABLE2_EMG2QWERTY
from semgkit.repro.uncertainty import describe, from_row


def ratio(a: float, b: float) -> str:
    """'53x' for a/b, the way the prose quotes a size ratio."""
    return f"{a / b:.0f}x" if a >= 10 * b else f"{a / b:.1f}x"


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
    """Table 2's claims (`claims.scaling`), each line ending its claim with the verdict."""
    return [c.line() for c in claims.scaling(table).values()] + _one_seed_note(table)


def scaling_forecasts(table2: pd.DataFrame) -> list[Claim]:
    """Chapter 3's forecasts for the laptop profile: Table 2's claims as `claims.scaling`
    judged them, the TDS one phrased the other way round (the paper's opposite)."""
    found, out = claims.scaling(table2), []
    if "falls" in found:
        text = found["falls"].text
        out.append(replace(found["falls"], text=f"{text[0].upper()}{text[1:]}."))
    if "personalization" in found:
        out.append(
            replace(found["personalization"], text="Personalization lowers CER for every model.")
        )
    if "transformer beats tds" in found:
        tds = "The TDS-ConvNet beats the transformer closest to it in size, the opposite of the paper."
        out.append(found["transformer beats tds"].negated(tds))
    return out


def decoder_forecasts(table2: pd.DataFrame) -> list[Claim]:
    """Chapter 3's forecasts about the language model, on Table 2's decoder columns: mean
    change in CER points from beam to beam+LM (negative: the LM helped). The decoder
    columns carry no intervals, so the verdicts compare point estimates (booleans)."""
    m = measure_of(table2)
    change = {
        setting: table2[cer_column(setting, "beam+LM")] - table2[cer_column(setting, "beam")]
        for setting in (m, "personalized")
        if f"{setting} CER %" in table2
    }
    mean = {k: float(v.mean()) for k, v in change.items()}
    order = table2.sort_values("parameters").index
    ladder = [i for i in order if table2.loc[i, "family"] == "transformer"]
    small, big = change[m][ladder[0]], change[m][ladder[-1]]
    out = [
        Claim(
            f"The LM helps the largest transformer more than the smallest ({m}).",
            bool(big < small),
            f"{big:+.1f} against {small:+.1f} points",
        )
    ]
    if "personalized" in mean:
        helps = f"mean change {mean['personalized']:+.1f} personalized, {mean[m]:+.1f} {m}"
        text = "The LM helps personalized models more than cross-user ones."
        out.insert(0, Claim(text, bool(mean["personalized"] < mean[m]), helps))
    return out


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
    """Table 3's claims (`claims.distillation`), each line ending with its verdict;
    ``sweeps`` ({"temperature": table, "alpha": table}) adds whether each knob's best
    setting beats its worst (for sweeps of two settings or more)."""
    rows, m = {r["role"]: r for _, r in table3.iterrows()}, measure_of(table3)
    t, s, k = (from_row(rows[r], m) for r in ("teacher", "student alone", "student distilled"))
    size = rows["teacher"]["parameters"] / rows["student alone"]["parameters"]
    found = claims.distillation(table3)
    out = [
        f"teacher/student parameter ratio: {size:.0f}x (paper: ~{paper.SIZE_RATIO}x)",
        f"{m} CER % [95% interval]: teacher {describe(t)}, student alone {describe(s)}, "
        f"distilled {describe(k)}",
        found["within gap"].line(),
        found["beats alone"].line(),
    ]
    if found["teacher beats alone"].verdict == "holds":
        closed = (s.cer - k.cer) / (s.cer - t.cer)
        out.append(f"distillation closes {100 * closed:.0f} % of the teacher-student gap")
    else:
        out.append(
            f"the teacher beats the student alone: {found['teacher beats alone'].verdict}, so "
            "the share of the gap that distillation closes is not reported"
        )
    out += [sweep_finding(t, knob) for knob, t in (sweeps or {}).items() if t[knob].nunique() > 1]
    return out + _one_seed_note(pd.concat([table3, *(sweeps or {}).values()]))


def distillation_forecasts(table3: pd.DataFrame) -> list[Claim]:
    """Chapter 4's forecasts for the laptop profile: Table 3's claims as
    `claims.distillation` judged them, the gap one phrased the other way round."""
    found = claims.distillation(table3)
    behind = (
        f"The distilled student stays more than the paper's {paper.DISTILL_GAP} points behind "
        "the teacher (tiny models, short training)."
    )
    return [
        replace(found["beats alone"], text="Distillation beats training the student alone."),
        found["within gap"].negated(behind),
    ]


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
