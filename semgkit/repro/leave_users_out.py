"""The leave-users-out table: does CER on unseen users fall as training users grow?

The real-data stand-in for the population table (`semgkit.repro.robustness`): real users carry
no population label, but the training set can be cut to its first K users. For each K of
the profile's ``[robustness] user_counts``, the teacher and the student alone are trained
again on a split holding only the first K training users of the profile's split (in order
of first appearance, `semgkit.split_rules`, the rule of the shipped ``few-users-K``
files), with the same validation and test parts; every run is scored on the profile's
test users (the official 8 held-out users on real data). The run with all the split's
training users is Table 2's, read from the cache.

A K-user split lives in a corpus of its own under ``<build>/data/users-<key>``: the split
file and links to the source corpus's session files, so the user's data directory and
the synthetic corpus stay as they were written. The key hashes the source split file, so
a changed source never reuses a stale run. Outside the run and bench cache keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from semgkit import models, synth
from semgkit.data import split_dataset, split_entry, yaml_mapping
from semgkit.repro import measured, paper_tables, recipes, schedule, uncertainty
from semgkit.repro.claims import every, judge, steps
from semgkit.repro.profiles import Profile
from semgkit.repro.robustness import run_missing
from semgkit.runs import TrainConfig, load_run
from semgkit.split_rules import users_in_order

FLAG = "profile [robustness] user_counts"
PARTS = ("train", "val", "test")
MEASURE = "cross-user"
OWN_RUN = "run of Tables 2-3"  # the column marking the runs on all the split's users


def first_users(dataset: dict[str, Any], k: int, split: str) -> dict[str, list]:
    """``dataset`` (a split file's train/val/test lists) with only the train entries of
    its first ``k`` training users; val and test unchanged, so every K is validated and
    tested alike."""
    parts = {part: list(dataset.get(part) or []) for part in PARTS}
    users = users_in_order(parts["train"])
    if not 1 <= k <= len(users):
        raise ValueError(f"{FLAG}: {k} users asked of split {split!r}, which has {len(users)}")
    chosen = set(users[:k])
    return {**parts, "train": [e for e in parts["train"] if e["user"] in chosen]}


def split_name(P: Profile, k: int) -> str:
    return f"{P.corpus.split}-first-{k}-users"


def source_dataset(P: Profile) -> tuple[Path, dict[str, Any]]:
    """The profile's split file and its ``dataset`` mapping."""
    path = recipes.prepare_corpus(P) / "splits" / f"{P.corpus.split}.yaml"
    return path, split_dataset(path, yaml_mapping(path))


def user_corpus(P: Profile, k: int) -> Path:
    """The corpus of the first ``k`` training users (split :func:`split_name`), written
    once (atomically, `synth.build_corpus`) under the build's data."""
    source = recipes.prepare_corpus(P)
    path, dataset = source_dataset(P)
    name = split_name(P, k)
    parts = first_users(dataset, k, P.corpus.split)
    recipe = {"source": str(source.resolve()), "split file": path.read_text(), "users": k}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    def write(tmp: Path) -> None:
        (tmp / "splits").mkdir()
        header = f"# DERIVED by semgkit: the first {k} training users of {P.corpus.split}\n"
        body = yaml.safe_dump({"user": name, "dataset": parts}, sort_keys=False)
        (tmp / "splits" / f"{name}.yaml").write_text(header + body)
        seen: dict[str, str] = {}
        for part in PARTS:
            for i, entry in enumerate(parts[part]):
                where = f"{path}: dataset.{part}[{i}]"
                file = split_entry(where, str(entry["session"]), part, seen, source)
                os.symlink(file.resolve(), tmp / file.name)

    return synth.build_corpus(P.build_dir / "data" / f"users-{key}", recipe, False, write)


def counts(P: Profile) -> tuple[list[int], int]:
    """(the profile's user counts, sorted, with the split's own count last; that count)."""
    _, dataset = source_dataset(P)
    total = len(users_in_order(dataset.get("train") or []))
    for k in P.robustness.user_counts:
        first_users(dataset, k, P.corpus.split)  # a count too large fails here, before a run
    return sorted({*P.robustness.user_counts, total}), total


def model_configs(P: Profile) -> dict[str, TrainConfig]:
    """The models trained on fewer users: Table 3's teacher and its student alone."""
    d = P.distill
    return {
        "teacher": recipes.teacher_config(P),
        "student alone": recipes.train_config(P, d.student, seed=P.student_seeds()[0]),
    }


def runs(P: Profile) -> list[tuple[str, int, Path]]:
    """(model, training users, run) for each model and count, trained if not cached; the
    count of all the split's users is the profile's own run (Table 2's)."""
    ks, total = counts(P)
    corpora = {k: user_corpus(P, k) for k in ks if k != total}
    plan = [
        (role, k, c if k == total else replace(c, data_dir=str(corpora[k]), split=split_name(P, k)))
        for role, c in model_configs(P).items()
        for k in ks
    ]
    done = schedule.train_many(P, [c for _, _, c in plan])
    return [(role, k, r) for (role, k, _), r in zip(plan, done, strict=True)]


def table(P: Profile) -> pd.DataFrame | None:
    """Per model and training-user count: CER on the profile's test users with its 95 %
    interval over them; None when ``[robustness] user_counts`` is empty."""
    if not P.robustness.user_counts:
        return None
    trained = runs(P)
    todo = [
        (schedule.evaluate_test, P, r)
        for _, _, r in trained
        if not (r / f"eval-{P.corpus.split}-test.json").is_file()
    ]
    run_missing(P, todo, "leave-users-out")
    _, total = counts(P)
    _, dataset = source_dataset(P)
    rows = []
    for role, k, r in trained:
        model, config = load_run(r)
        result = measured.cross_user(P, r)
        rows.append(
            {
                "model": role,
                "preset": config.preset,
                "parameters": models.count_params(model),
                "training users": k,
                "training sessions": len(first_users(dataset, k, P.corpus.split)["train"]),
                OWN_RUN: k == total,
                **uncertainty.columns(
                    MEASURE, uncertainty.estimate([paper_tables.user_groups(result)])
                ),
                "test users": len(result["per_user"]),
                "CER protocol": result["protocol"],
            }
        )
    return pd.DataFrame(rows)


def findings(df: pd.DataFrame) -> list[str]:
    """Per model: whether CER with the most users is below CER with the fewest, and whether
    it falls at every step (`claims.judge`, `claims.every`); then whether the gain differs
    by model size (point estimates of fewest minus most: no interval to judge it on)."""
    out, gains = [], {}
    for role, rows in df.groupby("model", sort=False):
        rows = rows.sort_values("training users")
        estimates = [uncertainty.from_row(r, MEASURE) for _, r in rows.iterrows()]
        few, most = estimates[0], estimates[-1]
        k_few, k_most = rows["training users"].iloc[0], rows["training users"].iloc[-1]
        verdict = judge(most, few)
        gain = few.cer - most.cer
        gains[role] = (int(rows["parameters"].iloc[0]), rows["preset"].iloc[0], gain)
        out.append(
            f"{role} ({rows['preset'].iloc[0]}): CER {uncertainty.describe(few)} with {k_few} "
            f"training users, {uncertainty.describe(most)} with {k_most}: {-gain:+.1f} points; "
            f"'more users, lower CER' {verdict}; 'lower at every step' {every(steps(estimates))}"
        )
    if len(gains) >= 2:
        (p_small, small, g_small), *_, (p_large, large, g_large) = sorted(gains.values())
        larger = "larger" if g_large > g_small else "not larger"
        out.append(
            f"the gain from more users is {larger} for the larger model: {large} {g_large:+.1f} "
            f"points against {small} {g_small:+.1f} (point estimates; each model's verdict above)"
        )
    return out
