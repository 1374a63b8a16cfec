"""Tables 2 and 3 and the distillation sweeps: each builder computes the runs and
evaluations its table needs (:mod:`semgkit.repro.schedule`, cached), then reads them
(:mod:`semgkit.repro.measured`) into rows with 95 % intervals and the paper's columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from semgkit import models, paper
from semgkit.repro import uncertainty
from semgkit.repro.measured import (
    cross_user,
    decoded,
    described,
    personalized,
    train_seconds,
    trained,
)
from semgkit.repro.profiles import Profile
from semgkit.repro.recipes import (
    distilled_config,
    personal_dir,
    personal_split,
    planned_configs,
    scaling_configs,
    test_users,
    train_config,
)
from semgkit.repro.schedule import (
    TABLE2_DECODERS,
    TABLE2_EMG2QWERTY,
    evaluate_many,
    evaluate_tests,
    personalize_many,
    run,
    train_many,
)
from semgkit.repro.uncertainty import estimate
from semgkit.runs import load_run


def cer_column(setting: str, decoder: str) -> str:
    """Table 2's column of ``setting`` (cross-user, personalized) CER under ``decoder``."""
    return f"{setting} CER %" if decoder == "greedy" else f"{setting} CER % {decoder}"


def measure_of(table: pd.DataFrame) -> str:
    """What a Table 2 or 3 measures: ``single-user`` (a run tested on its own training
    user) when its columns say so, else ``cross-user``."""
    return "single-user" if "single-user CER %" in table.columns else "cross-user"


def decoder_columns(P: Profile, run_dir: Path, users: list[str]) -> dict[str, float]:
    """Table 2's CER under :data:`TABLE2_DECODERS`, cross-user and personalized, under
    :data:`TABLE2_EMG2QWERTY` on the test set, and the CPU seconds each takes per minute of sEMG
    on that test set (one thread)."""
    names, decoders = list(TABLE2_DECODERS), list(TABLE2_DECODERS.values())
    generic = decoded(run_dir, P.corpus.split, decoders + list(TABLE2_EMG2QWERTY.values()))
    personal = [
        decoded(personal_dir(P, run_dir, user), personal_split(P, user), decoders) for user in users
    ]
    out: dict[str, float] = {}
    for k, name in enumerate(names):
        out[cer_column(P.measure(), name)] = round(generic[k]["overall"]["CER"], 2)
        if users:
            out[cer_column("personalized", name)] = round(pooled_cer([p[k] for p in personal]), 2)
    for k, name in enumerate(TABLE2_EMG2QWERTY, start=len(names)):
        out[cer_column(P.measure(), name)] = round(generic[k]["overall"]["CER"], 2)
    for k, name in enumerate([*names, *TABLE2_EMG2QWERTY]):
        t = generic[k]["decoding"]
        out[f"{name} CPU s per sEMG min"] = round(
            t["cpu_seconds"] / max(t["semg_minutes"], 1e-9), 2
        )
    return out


def pooled_cer(results: list[dict[str, Any]]) -> float:
    """CER pooled over several evaluations: total edits over total target characters."""
    counts = [_edits(r["overall"]) for r in results]
    edits, chars = sum(c["edits"] for c in counts), sum(c["chars"] for c in counts)
    return 100.0 * edits / max(chars, 1)


def _edits(counts: dict[str, Any]) -> dict[str, int]:
    """Edits and characters of one group: the unit the bootstrap resamples."""
    edits = counts["insertions"] + counts["deletions"] + counts["substitutions"]
    return {"edits": edits, "chars": counts["chars"]}


def user_groups(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per held-out user edits and characters of an evaluation's result."""
    return {u: _edits(c) for u, c in result["per_user"].items()}


def personal_groups(users: list[str], results: list[list[dict[str, Any]]]) -> list[dict]:
    """Per seed, each user's edits and characters after fine-tuning on that user."""
    return [{u: _edits(r["overall"]) for u, r in zip(users, rs, strict=True)} for rs in results]


def protocol(results: list[dict[str, Any]]) -> str:
    """The evaluation protocol behind a table's CER columns (one per row, never mixed)."""
    protocols = {r["protocol"] for r in results}
    if len(protocols) != 1:
        raise ValueError(f"CER columns mix evaluation protocols {sorted(protocols)}")
    return protocols.pop()


def _family(preset: str) -> str:
    return "tds" if preset.startswith("tds") else "transformer"


def scaling(P: Profile) -> pd.DataFrame:
    """Table 2: each ladder model and the baseline, cross-user and personalized CER (in
    the single-user setting: the CER on the training user's own test sessions); the
    paper's columns only where its protocol is the profile's (``P.paper_protocol``)."""
    users = test_users(P)
    configs = scaling_configs(P)
    runs = train_many(P, configs)
    personalize_many(P, runs, users)
    evaluate_many(P, runs, users)
    rows = []
    for preset in [*P.scaling.ladder, P.scaling.baseline]:
        seeded = [r for c, r in zip(configs, runs, strict=True) if c.preset == preset]
        model, config = load_run(seeded[0])
        generic_results = [cross_user(P, r) for r in seeded]
        personal_results = [[personalized(P, r, u) for u in users] for r in seeded]
        generic = [user_groups(g) for g in generic_results]
        personal = personal_groups(users, personal_results)
        reported = paper.TABLE2.get(preset) if P.paper_protocol() else None
        personal_columns = uncertainty.columns("personalized", estimate(personal)) if users else {}
        paper_columns = {
            "params (paper)": reported.params if reported else "",
            "cross-user CER % (paper)": reported.cross_user_cer if reported else None,
            "personalized CER % (paper)": reported.personalized_cer if reported else None,
        }
        rows.append(
            {
                "preset": preset,
                "family": _family(preset),
                "parameters": models.count_params(model),
                "peak lr": config.lr,
                "train s": round(float(np.mean([train_seconds(r) for r in seeded])), 1),
                "seeds": len(seeded),
                **uncertainty.columns(P.measure(), estimate(generic)),
                **personal_columns,
                **decoder_columns(P, seeded[0], users),  # the first seed's run
                "personalized users": len(users),
                "CER protocol": protocol(generic_results + sum(personal_results, [])),
                **(paper_columns if P.paper_protocol() else {}),
            }
        )
    return pd.DataFrame(rows)


def _row(
    P: Profile, role: str, seeded: list[Path], users: list[str], **extra: Any
) -> dict[str, Any]:
    """A Table 3 row; ``users`` adds the CER after fine-tuning on each of them."""
    results = [cross_user(P, r) for r in seeded]
    cer = uncertainty.columns(P.measure(), estimate([user_groups(x) for x in results]))
    if users:
        per_user = [[personalized(P, r, u) for u in users] for r in seeded]
        cer |= uncertainty.columns("personalized", estimate(personal_groups(users, per_user)))
        results += sum(per_user, [])
    return {**described(role, seeded, **extra), **cer, "CER protocol": protocol(results)}


def distillation(P: Profile) -> dict[str, pd.DataFrame]:
    """Table 3 (teacher, student alone, student distilled) and the T and alpha sweeps."""
    d = P.distill
    teachers = [run(P, train_config(P, d.teacher, seed=s)) for s in P.model_seeds(d.teacher)]
    teacher = teachers[0]  # = run_dir(P, teacher_config(P)): the students' teacher
    students = [train_config(P, d.student, seed=s) for s in P.student_seeds()]
    # every distilled run sees the same windows (one data seed): the first to train fills
    # the teacher's output cache, the others start when it is done (train_many)
    distilled = [c for c in planned_configs(P) if c.teacher]
    alone = train_many(P, [*students, *distilled])[: len(students)]

    def distilled_runs(t: float, a: float, seeds: tuple[int, ...]) -> list[Path]:
        return trained(P, [distilled_config(P, teacher, t, a, seed=s) for s in seeds])

    headline = distilled_runs(d.temperature, d.alpha, P.student_seeds())
    users = test_users(P)
    for seeded in (teachers, alone, headline):
        evaluate_tests(P, seeded)
        if users:
            personalize_many(P, seeded, users)
    distilled_row = {"temperature": d.temperature, "alpha": d.alpha}
    table3 = pd.DataFrame(
        [
            _row(P, "teacher", teachers, users),
            _row(P, "student alone", alone, users),
            _row(P, "student distilled", headline, users, **distilled_row),
        ]
    )
    if P.paper_protocol():
        table3["cross-user CER % (paper)"] = table3["role"].map(paper.TABLE3_CER)
        table3["personalized CER % (paper)"] = table3["role"].map(paper.TABLE3_PERSONALIZED_CER)
        table3["params (paper)"] = table3["role"].map(paper.TABLE3_PARAMS)
        table3["CER % bound (derived from the paper's claim)"] = table3["role"].map(
            {"student distilled": paper.TABLE3_DISTILLED_BOUND}
        )

    def sweep(pairs: list[tuple[float, float]]) -> pd.DataFrame:
        runs = [distilled_runs(t, a, P.seeds()) for t, a in pairs]
        for seeded in runs:
            evaluate_tests(P, seeded)
        rows = [
            _row(P, "student distilled", seeded, [], temperature=t, alpha=a)
            for (t, a), seeded in zip(pairs, runs, strict=True)
        ]
        return pd.DataFrame(rows)

    temps = sweep([(t, d.alpha) for t in d.temperatures])
    alphas = sweep([(d.temperature, a) for a in d.alphas])
    return {"table3_distillation": table3, "table3_temperature": temps, "table3_alpha": alphas}
