"""Sensor shift: the teacher and the distilled student on a simulated other sensor, zero-shot
and after fine-tuning on that sensor's data (chapter 7's last table).

The other sensor is a `semgkit.perturb` spec, usually one of `semgkit.sensors` (``mirror``,
``sparse:n=8``). Its data for each of the first ``[robustness] sensor_users`` test users is
written as a corpus of its own (:func:`sensor_corpus`: the user's personalized split's
sessions read through the sensor, the very samples ``semgkit eval --perturb`` scores), so
fine-tuning is Table 2's personalization (`train.personalize`, the profile's steps and
learning rate) unchanged, and the zero-shot score a plain evaluation. The same users on the original
sensor come from the caches of chapters 3 and 4 (the generic run on their test sessions,
and Table 3's fine-tuning). Outside the run and bench cache keys.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import h5py
import pandas as pd

from semgkit import perturb, synth
from semgkit.data import Session, load_split
from semgkit.evaluate import evaluate
from semgkit.format import EMG_FIELDS, GROUP, TIMESERIES
from semgkit.repro import cache, measured, paper_tables, recipes, robustness, schedule, uncertainty
from semgkit.repro.claims import judge
from semgkit.repro.profiles import Profile
from semgkit.runs import run_config

FLAG = "profile [robustness] sensors"
ORIGINAL = "original"
ROLES = ("teacher", "student distilled")  # Table 3's pair: does distillation keep it?


def sensor_users(P: Profile) -> list[str]:
    """The first ``[robustness] sensor_users`` test users of the generic split."""
    users = list(load_split(recipes.prepare_corpus(P), P.corpus.split).test_users)
    return users[: P.robustness.sensor_users]


def sensor_corpus(P: Profile, spec: str, user: str) -> Path:
    """Test user ``user``'s personalized split (every part) with each session read through
    the sensor ``spec`` (seeded by the profile's seed), written once under the build's data."""
    sensor = perturb.parse([spec], seed=P.seed, flag=FLAG)
    source = recipes.prepare_corpus(P)
    split = recipes.personal_split(P, user)
    marker = source / synth.MARKER
    recipe = {
        "sensor": sensor.specs,
        "seed": P.seed,
        "source": str(source.resolve()),
        "source recipe": marker.read_text() if marker.is_file() else "",
        "split": split,
        "split file": (source / "splits" / f"{split}.yaml").read_text(),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]

    def write(tmp: Path) -> None:
        (tmp / "splits").mkdir()
        shutil.copyfile(source / "splits" / f"{split}.yaml", tmp / "splits" / f"{split}.yaml")
        parts = load_split(source, split)
        for path in parts.train + parts.val + parts.test:
            write_through(sensor, path, tmp / path.name)

    return synth.build_corpus(P.build_dir / "data" / f"sensor-{key}", recipe, False, write)


def write_through(sensor: perturb.Perturbation, path: Path, out: Path) -> None:
    """A copy of session ``path`` at ``out`` whose signal is the session read through
    ``sensor`` (`perturb.PerturbedSession`, block by block); all else byte for byte."""
    session = sensor.session(Session(path))
    shutil.copyfile(path, out)
    with h5py.File(out, "r+") as f:
        records = f[GROUP][TIMESERIES]
        for lo in range(0, len(session), perturb.BLOCK):
            hi = min(lo + perturb.BLOCK, len(session))
            block, emg = records[lo:hi], session.window(lo, hi)
            for band, field in enumerate(EMG_FIELDS):
                block[field] = emg[:, band]
            records[lo:hi] = block


def _finetuned_dir(P: Profile, run_dir: Path, corpus: Path, split: str) -> Path:
    steps, lr = recipes.personal_recipe(P, run_dir)
    extra = {"split": split, "steps": steps, "lr": lr, "sensor corpus": corpus.name}
    key = cache.config_key(run_config(run_dir), extra)
    return P.build_dir / "cache" / "sensor" / f"{run_dir.name}-{corpus.name}-{split}-{key}"


def _zero_shot_path(run_dir: Path, corpus: Path, split: str) -> Path:
    return run_dir / f"eval-{corpus.name}-{split}-test.json"


def evaluate_zero_shot(run_dir: Path, corpus: Path, split: str) -> None:
    """Score the generic run on ``split``'s test sessions of the sensor corpus, unless cached."""
    path = _zero_shot_path(run_dir, corpus, split)
    if not path.is_file():
        evaluate(run_dir, corpus, split, "test").save(path)


def zero_shot(run_dir: Path, corpus: Path, split: str) -> dict[str, Any]:
    """The generic run on the sensor corpus's test sessions, as :func:`evaluate_zero_shot`
    cached it."""
    path = _zero_shot_path(run_dir, corpus, split)
    return measured.read_result(path, f"{__name__}.evaluate_zero_shot")


def fine_tune(P: Profile, run_dir: Path, corpus: Path, split: str) -> None:
    """Fine-tune the generic run on ``split`` of the sensor corpus and score it on its test
    part, unless cached."""
    out = _finetuned_dir(P, run_dir, corpus, split)
    if not (out / "eval.json").is_file():
        schedule.personalize_job(run_dir, corpus, split, out, *recipes.personal_recipe(P, run_dir))


def fine_tuned(P: Profile, run_dir: Path, corpus: Path, split: str) -> dict[str, Any]:
    """The generic run fine-tuned on the sensor corpus, on its test part, as
    :func:`fine_tune` cached it."""
    path = _finetuned_dir(P, run_dir, corpus, split) / "eval.json"
    return measured.read_result(path, f"{__name__}.fine_tune")


def _minutes(pairs: list[tuple[Path, str]]) -> float:
    """sEMG minutes of fine-tuning data per user: their splits' training sessions."""
    sessions = [Session(p) for corpus, split in pairs for p in load_split(corpus, split).train]
    return sum(len(s) / s.sample_rate for s in sessions) / 60 / len(pairs)


def sensor_table(P: Profile) -> pd.DataFrame:
    """Per model of :data:`ROLES` and sensor (the original first): CER on the users' test
    sessions zero-shot (the generic run) and after fine-tuning on their own sessions from
    that sensor, with 95 % intervals over the users."""
    R = P.robustness
    for spec in R.sensors:
        perturb.parse([spec], flag=FLAG)  # a bad entry fails here, before any run
    runs = {role: path for role, path in robustness.curve_runs(P).items() if role in ROLES}
    users = sensor_users(P)
    splits = [recipes.personal_split(P, u) for u in users]
    source = recipes.prepare_corpus(P)
    # per sensor, each user's (corpus, split): one corpus per user, so more users add some
    where = {ORIGINAL: [(source, s) for s in splits]}
    for spec in R.sensors:
        where[spec] = [(sensor_corpus(P, spec, u), s) for u, s in zip(users, splits, strict=True)]
    shifted = [pair for spec in R.sensors for pair in where[spec]]
    todo = []  # one pool, the longest first: the teacher's fine-tunings, then the rest
    for r in runs.values():
        todo += [
            (schedule.personalize_many, P, [r], [u])  # the original sensor's (Table 3's cache)
            for u in users
            if not (recipes.personal_dir(P, r, u) / "eval.json").is_file()
        ]
        todo += [
            (fine_tune, P, r, c, s)
            for c, s in shifted
            if not (_finetuned_dir(P, r, c, s) / "eval.json").is_file()
        ]
    for r in runs.values():
        todo += [
            (evaluate_zero_shot, r, c, s)
            for c, s in shifted
            if not _zero_shot_path(r, c, s).is_file()
        ]
        todo += [
            (schedule.evaluate_test, P, r, s)
            for s in splits
            if not (r / f"eval-{s}-test.json").is_file()
        ]
    robustness.run_missing(P, todo, "sensor shift")
    rows = []
    for role, r in runs.items():
        for sensor, pairs in where.items():
            if sensor == ORIGINAL:
                before = [measured.cross_user(P, r, s) for s in splits]
                after = [measured.personalized(P, r, u) for u in users]
            else:
                before = [zero_shot(r, c, s) for c, s in pairs]
                after = [fine_tuned(P, r, c, s) for c, s in pairs]
            zero, tuned = (
                uncertainty.estimate(paper_tables.personal_groups(users, [results]))
                for results in (before, after)
            )
            rows.append(
                {
                    "model": role,
                    "preset": run_config(r).preset,
                    "sensor": sensor,
                    **uncertainty.columns("zero-shot", zero),
                    **uncertainty.columns("fine-tuned", tuned),
                    "fine-tune sEMG min per user": round(_minutes(pairs), 2),
                    "fine-tune steps": recipes.personal_recipe(P, r)[0],
                    "users": len(users),
                    "CER protocol": paper_tables.protocol(before + after),
                }
            )
    return pd.DataFrame(rows)


def sensor_findings(table: pd.DataFrame) -> list[str]:
    """Per model and other sensor: what the sensor costs zero-shot (the claim "worse on
    this sensor", `claims.judge` against the original sensor's intervals) and how much of it fine-tuning wins back; then whether the
    distilled student loses more to each sensor than its teacher."""
    out = []
    rise: dict[tuple[str, str], float] = {}
    for role, rows in table.groupby("model", sort=False):
        base = rows.iloc[0]
        zero0 = uncertainty.from_row(base, "zero-shot")
        tuned0 = uncertainty.from_row(base, "fine-tuned")
        for _, row in rows.iloc[1:].iterrows():
            zero = uncertainty.from_row(row, "zero-shot")
            tuned = uncertainty.from_row(row, "fine-tuned")
            rise[row["sensor"], role] = zero.cer - zero0.cer
            worse = judge(zero0, zero)  # "the other sensor costs CER zero-shot"
            gap = zero.cer - tuned0.cer
            won = (
                f"fine-tuning on {row['fine-tune sEMG min per user']:g} min per user closes "
                f"{100 * (zero.cer - tuned.cer) / gap:.0f} % of the gap to the original "
                f"sensor fine-tuned ({tuned0.cer:.1f})"
                if gap > 0
                else "no gap to the original sensor fine-tuned to close"
            )
            out.append(
                f"{row['sensor']}, {role}: zero-shot {uncertainty.describe(zero)} against "
                f"{uncertainty.describe(zero0)} on the original sensor ("
                + f"'worse on this sensor' {worse}); fine-tuned {uncertainty.describe(tuned)}; {won}"
            )
    for sensor in dict.fromkeys(s for s, _ in rise):
        if (sensor, "teacher") in rise and (sensor, "student distilled") in rise:
            t, s = rise[sensor, "teacher"], rise[sensor, "student distilled"]
            kept = "no more than" if s <= t else "more than"
            out.append(
                f"{sensor}: zero-shot the distilled student loses {s:+.1f} points, {kept} "
                f"the teacher's {t:+.1f}"
            )
    return out
