"""Claims and their verdicts: one rule for every claim the book prints.

A claim ("A's CER is below B's") is judged from two rows' 95 % intervals and seed spread
(`uncertainty.Estimate`): "holds" or "does not hold" only when the difference is larger
than both, else "within noise" (:func:`judge`). A claim made of several (every step of a
ladder, every model) is combined by one rule (:func:`every`). Tables 2 and 3's claims are
judged here once (:func:`scaling`, :func:`distillation`); the findings under the tables
and the forecast boxes phrase the same :class:`Claim`, so one claim cannot get two
verdicts. Presentation only: outside the run and bench cache keys.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from IPython.display import Markdown

from semgkit import paper
from semgkit.repro.paper_tables import measure_of
from semgkit.repro.uncertainty import Estimate, describe, from_row

VERDICTS = ("holds", "does not hold", "within noise")
MARKS = {"holds": "✓ holds", "does not hold": "✗ does not hold", "within noise": "≈ within noise"}
OPPOSITE = {"holds": "does not hold", "does not hold": "holds", "within noise": "within noise"}


def judge(a: Estimate, b: Estimate, margin: float = 0.0) -> str:
    """Verdict on the claim "a's CER is below b's CER + margin".

    "within noise" when the intervals overlap, when the difference is no larger than
    the seed spread of either, or when an interval is unknown (one test group)."""
    difference = b.cer + margin - a.cer
    unknown = any(math.isnan(x) for x in (a.lo, a.hi, b.lo, b.hi))
    overlap = a.lo <= b.hi + margin and b.lo + margin <= a.hi
    if unknown or overlap or abs(difference) <= max(a.spread, b.spread):
        return "within noise"
    return "holds" if difference > 0 else "does not hold"


def every(verdicts: Sequence[str]) -> str:
    """The one rule for a claim made of several: refuted by any part, held only if every
    part holds, else within noise."""
    if "does not hold" in verdicts:
        return "does not hold"
    return "holds" if all(v == "holds" for v in verdicts) else "within noise"


def steps(estimates: Sequence[Estimate]) -> list[str]:
    """Verdicts on "each is below the one before", step by step."""
    return [judge(b, a) for a, b in pairwise(estimates)]


@dataclass(frozen=True)
class Claim:
    """A claim, this run's verdict on it and what was measured. ``verdict`` is one of
    :data:`VERDICTS`, a bare boolean for a comparison of point estimates (no interval to
    judge it on), or None when the run cannot test it."""

    text: str
    verdict: str | bool | None
    measured: str

    def line(self) -> str:
        """The claim as a findings line: ``text: verdict (measured)``."""
        return f"{self.text}: {self.verdict} ({self.measured})"

    def negated(self, text: str) -> Claim:
        """The opposite claim, phrased as ``text``, from the same judgement."""
        flipped = self.verdict
        if isinstance(flipped, bool):
            flipped = not flipped
        elif flipped is not None:
            flipped = OPPOSITE[flipped]
        return Claim(text, flipped, self.measured)


def mark(verdict: bool | str) -> str:
    """The mark printed beside a claim: from a verdict of :func:`judge`, or a boolean."""
    if isinstance(verdict, str):
        return MARKS[verdict]
    return "✓" if verdict else "✗"


def literal(text: str) -> str:
    """``text`` as Markdown that shows it as typed: every ASCII punctuation mark escaped, so
    a name (a profile's, a preset's: files people share) cannot open a tag, link or maths."""
    return "".join(f"\\{c}" if c in string.punctuation else c for c in text)


def box(source: str, claims: Sequence[Claim]) -> Markdown:
    """Claims from one source (a forecast, the paper) in one box, each with this run's
    verdict; "not testable in this run" for a claim without one."""
    lines = [f"> **{literal(source)}**", ">"]
    for c in claims:
        shown = "not testable in this run" if c.verdict is None else mark(c.verdict)
        lines.append(f"> - {literal(c.text)} **This run: {shown}** ({literal(c.measured)})")
    return Markdown("\n".join(lines))


def scaling(table2: pd.DataFrame) -> dict[str, Claim]:
    """Table 2's claims, by name: ``falls`` (smallest to largest transformer), ``every
    step`` (of the ladder), ``personalization`` (for every model), ``transformer beats
    tds`` (the transformer closest in size); those the table cannot test are left out."""
    rows = [r for _, r in table2.iterrows()]
    transformers = table2[table2["family"] == "transformer"].sort_values("parameters")
    ladder = [r for _, r in transformers.iterrows()]
    m, out = measure_of(table2), {}
    if len(ladder) > 1:
        cross = [from_row(r, m) for r in ladder]
        out["falls"] = Claim(
            f"{m} CER falls from the smallest to the largest transformer",
            judge(cross[-1], cross[0]),
            f"{describe(cross[0])} -> {describe(cross[-1])}",
        )
        verdicts = steps(cross)
        rho = pd.Series([e.cer for e in cross]).corr(
            pd.Series(np.log([r["parameters"] for r in ladder])), method="spearman"
        )
        each = [
            f"{a['preset']} -> {b['preset']} {v}"
            for (a, b), v in zip(pairwise(ladder), verdicts, strict=True)
        ]
        out["every step"] = Claim(
            "it falls at every step of the ladder",
            every(verdicts),
            "; ".join(each) + f"; Spearman rho with log-parameters {rho:+.2f}",
        )
    if "personalized CER %" in table2:
        verdicts = [judge(from_row(r, "personalized"), from_row(r, m)) for r in rows]
        gain = (table2[f"{m} CER %"] - table2["personalized CER %"]).mean()
        out["personalization"] = Claim(
            "personalization lowers CER for every model",
            every(verdicts),
            f"holds for {verdicts.count('holds')} of {len(rows)} models, within noise for "
            f"{verdicts.count('within noise')}, does not hold for "
            f"{verdicts.count('does not hold')}; mean gain {gain:.1f} points",
        )
    tds = [r for r in rows if r["family"] == "tds"]
    if tds and ladder:
        t = tds[0]
        near = min(ladder, key=lambda r: abs(np.log(r["parameters"]) - np.log(t["parameters"])))
        a, b = from_row(near, m), from_row(t, m)
        out["transformer beats tds"] = Claim(
            f"the transformer closest in size ({near['preset']}, {near['parameters']:,} "
            f"params) beats the TDS-ConvNet ({t['parameters']:,} params), {m}",
            judge(a, b),
            f"{near['preset']} {describe(a)}, TDS-ConvNet {describe(b)}",
        )
    return out


def distillation(table3: pd.DataFrame) -> dict[str, Claim]:
    """Table 3's claims, by name: ``within gap`` (the distilled student within the paper's
    gap of its teacher), ``beats alone`` (distillation beats training the student alone),
    ``teacher beats alone``."""
    rows, m = {r["role"]: r for _, r in table3.iterrows()}, measure_of(table3)
    t, s, k = (from_row(rows[r], m) for r in ("teacher", "student alone", "student distilled"))
    return {
        "within gap": Claim(
            f"the distilled student is within {paper.DISTILL_GAP} points of the teacher",
            judge(k, t, margin=paper.DISTILL_GAP),
            f"{k.cer - t.cer:+.1f} points",
        ),
        "beats alone": Claim(
            "distillation beats training the student alone",
            judge(k, s),
            f"{s.cer - k.cer:+.1f} points",
        ),
        "teacher beats alone": Claim(
            "the teacher beats the student alone", judge(t, s), f"{s.cer - t.cer:+.1f} points"
        ),
    }
