"""Chapter 8's tables: the paper's scaling and distillation questions asked of hand pose.

The runs are the book's (cached under :func:`~semgkit.repro.recipes.run_dir`, trained side
by side by :func:`~semgkit.repro.schedule.train_many`) on the profile's pose corpus (``[pose]``): each
ladder model's error on the test users (cross-user when they are held out, as in the
synthetic corpus; same-user on emg2pose's mini split, one recording), fine-tuned on each
held-out user's own stages where the corpus has personal splits; and the largest model
distilled into a small student with the regression objective, the mixing weight swept.

Errors are emg2pose's joint-angle MAE in degrees, pooled over scored samples. Intervals
are those of Tables 2 and 3 (:mod:`semgkit.repro.uncertainty`): the bootstrap resamples test
groups (users; stages when the test set has one user) and pools their error over their
scored samples, the seed range is over training seeds.
"""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from semgkit import models
from semgkit.atomic import atomic_write
from semgkit.format import SAMPLE_RATE
from semgkit.pose import PoseSession, PoseWindows, load_pose_split, pose_collate
from semgkit.pose_format import NUM_JOINTS
from semgkit.pose_metrics import PoseErrors
from semgkit.pose_train import POSE, at_frames, evaluate_pose_run
from semgkit.repro import uncertainty
from semgkit.repro.measured import described, read_result
from semgkit.repro.profiles import Pose, Profile
from semgkit.repro.recipes import peak_lr, run_dir
from semgkit.repro.schedule import train_many
from semgkit.repro.uncertainty import Estimate, estimate
from semgkit.runs import TrainConfig, load_run, run_config
from semgkit.synth_pose import generate_pose


def pose_section(P: Profile) -> Pose:
    if P.pose is None:
        raise ValueError(f"profile {P.name}: no [pose] section, so no pose chapter")
    return P.pose


@functools.cache
def prepare_pose_corpus(P: Profile) -> Path:
    """The profile's pose data: the synthetic pose corpus (built on first use) or emg2pose
    data at ``pose.path`` (``DATA=``), whose split must be complete."""
    pose = pose_section(P)
    if pose.source == "synthetic":
        default = P.build_dir / "data" / f"pose-{pose.preset}-seed{P.seed}"
        root = Path(pose.path).expanduser() if pose.path else default
        return generate_pose(root, pose.preset, seed=P.seed, progress=False)
    if pose.source != "emg2pose":
        raise ValueError(
            f"profile {P.name} [pose] source {pose.source!r}: 'synthetic' or 'emg2pose'"
        )
    if not pose.path:
        raise ValueError(
            f"profile {P.name}: pose data from emg2pose needs its folder: "
            "`python -m data_download emg2pose --dest DIR --mini`, then DATA=DIR"
        )
    root = Path(pose.path).expanduser()
    load_pose_split(root, pose.split)  # every listed stage present, or an error naming them
    return root


def pose_config(P: Profile, preset: str, **overrides: Any) -> TrainConfig:
    """The profile's pose recipe for one preset; overrides win."""
    pose = pose_section(P)
    lr = peak_lr(replace(P, train=replace(P.train, lr=pose.lr)), preset)  # the same width cap
    recipe = dict(steps=pose.steps, batch_size=pose.batch_size, lr=lr, val_windows=pose.val_windows)
    windows = dict(window_s=float(pose.window_s), past_s=float(pose.past_s), future_s=0.0)
    workers = dict(num_threads=P.train.num_threads, num_workers=P.train.num_workers)
    base = TrainConfig(
        data_dir=str(prepare_pose_corpus(P)),
        split=pose.split,
        preset=preset,
        model=dict(POSE),
        seed=P.seed,
        data_seed=P.seed,
        checkpoint_every=max(50, pose.steps // 4),
        **recipe,
        **windows,
        **workers,
    )
    return replace(base, **overrides)


@functools.cache
def _users(P: Profile, part: str) -> frozenset[str]:
    """The users of one part of the profile's pose split (from the files' attributes)."""
    split = load_pose_split(prepare_pose_corpus(P), pose_section(P).split)
    return frozenset(PoseSession(p).user for p in getattr(split, part))


def setting(P: Profile) -> str:
    """The test users' setting: cross-user when none of them trained, else same-user (as
    in emg2pose's mini split, another recording of the training user)."""
    return "same-user" if _users(P, "train") & _users(P, "test") else "cross-user"


def _grouping(P: Profile) -> str:
    """Test groups the interval resamples: users, or stages when there is one user."""
    return "user" if len(_users(P, "test")) > 1 else "stage"


def _errors_path(P: Profile, run_dir: Path, split: str) -> Path:
    return run_dir / f"pose-eval-{split}-test-by-{_grouping(P)}.json"


def evaluate_errors(P: Profile, run_dir: Path, split: str) -> None:
    """Score a run on ``split``'s test part (overall and per group), unless cached in the run."""
    path = _errors_path(P, run_dir, split)
    if not path.is_file():
        result = evaluate_pose_run(run_dir, prepare_pose_corpus(P), split, by=_grouping(P))
        atomic_write(path, json.dumps(result, indent=1))


def errors(P: Profile, run_dir: Path, split: str) -> dict[str, dict[str, float]]:
    """A run's test errors on ``split``, as :func:`evaluate_errors` cached them."""
    return read_result(_errors_path(P, run_dir, split), f"{__name__}.evaluate_errors")


def groups(result: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per group, its error summed over scored samples ("edits") and the samples x 100
    ("chars"): the pooled ratio :func:`uncertainty.estimate` forms is then the MAE."""
    return {
        g: {"edits": r["MAE"] * r["samples"], "chars": 100.0 * r["samples"]}
        for g, r in result.items()
        if g != "overall"
    }


MAE = "MAE deg"  # the unit of the chapter's error columns


def mae_columns(measure: str, e: Estimate) -> dict[str, float]:
    """``<measure> MAE deg``, its 95 % interval and seed range."""
    return uncertainty.columns(measure, e, unit=MAE)


def mae_estimate(row: pd.Series, measure: str) -> Estimate:
    """The :class:`Estimate` of a table row written by :func:`mae_columns`."""
    return uncertainty.from_row(row, measure, unit=MAE)


def personal_splits(P: Profile) -> list[str]:
    """The held-out users' personal splits (``splits/user<i>.yaml``), as many as the profile
    fine-tunes on; none on data without them (emg2pose's mini set)."""
    found = sorted((prepare_pose_corpus(P) / "splits").glob("user*.yaml"))
    names = [p.stem for p in found if p.stem[4:].isdigit()]
    names.sort(key=lambda n: int(n[4:]))
    limit = pose_section(P).personalize_users
    return names[:limit] if limit else names


def personal_config(P: Profile, run_dir: Path, split: str) -> TrainConfig:
    """The generic run ``run_dir`` fine-tuned on one held-out user's own stages."""
    generic = run_config(run_dir)
    lr = generic.lr * float(P.train.personalize_lr_fraction)
    tune = dict(steps=pose_section(P).personalize_steps, lr=lr, split=split, init=str(run_dir))
    untaught = dict(teacher="", teacher_cache=False, checkpoint_every=0, val_every=0)
    return replace(generic, **tune, **untaught)


def _scores(P: Profile, runs: list[Path], personal: bool) -> dict[str, Any]:
    """Columns of one row: test error (and personalized error) over ``runs``' seeds."""
    split = pose_section(P).split
    for r in runs:
        evaluate_errors(P, r, split)
    results = [errors(P, r, split) for r in runs]
    out: dict[str, Any] = mae_columns(setting(P), estimate([groups(x) for x in results]))
    distal = np.mean([x["overall"]["MAE_distal"] for x in results])
    out[f"{setting(P)} distal MAE deg"] = round(float(distal), 2)
    names = personal_splits(P) if personal else []
    if names:
        tuned = train_many(P, [personal_config(P, r, s) for r in runs for s in names])
        per_seed = [tuned[i * len(names) : (i + 1) * len(names)] for i in range(len(runs))]
        for ds in per_seed:
            for s, d in zip(names, ds, strict=True):
                evaluate_errors(P, d, s)
        scored = [_pooled_groups(P, names, ds) for ds in per_seed]
        out |= mae_columns("personalized", estimate(scored))
        out["personalized users"] = len(names)
    return out


def _pooled_groups(P: Profile, names: list[str], runs: list[Path]) -> dict[str, Any]:
    """The groups of each fine-tuned run (one per personal split) in one mapping."""
    out: dict[str, Any] = {}
    for split, tuned in zip(names, runs, strict=True):
        out |= groups(errors(P, tuned, split))
    return out


def _row(P: Profile, role: str, runs: list[Path], personal: bool, **extra: Any) -> dict[str, Any]:
    return {**described(role, runs, **extra), **_scores(P, runs, personal)}


def ladder_configs(P: Profile) -> list[TrainConfig]:
    return [pose_config(P, p, seed=s) for p in pose_section(P).ladder for s in P.pose_seeds()]


def generic_configs(P: Profile) -> list[TrainConfig]:
    """Every run of the chapter but the fine-tuning: the ladder, the student alone, and the
    student distilled from the largest model at each mixing weight."""
    pose, seeds = pose_section(P), P.pose_seeds()
    teacher = run_dir(P, pose_config(P, pose.ladder[-1], seed=seeds[0]))
    alphas = list(dict.fromkeys([pose.alpha, *pose.alphas]))
    students = [pose_config(P, pose.student, seed=s) for s in seeds]
    distilled = [distilled_config(P, teacher, a, s) for a in alphas for s in seeds]
    return [*ladder_configs(P), *students, *distilled]


def train_all(P: Profile) -> None:
    """The chapter's runs in two pools of ``train.jobs`` workers, so each worker starts
    torch once: the generic runs (a distilled student waits for its teacher), then the
    fine-tuning of those with a personalized error (not the alpha sweep's other runs)."""
    configs = generic_configs(P)
    runs = train_many(P, configs)
    alpha = pose_section(P).alpha
    tuned = [r for c, r in zip(configs, runs, strict=True) if not c.teacher or c.alpha == alpha]
    train_many(P, [personal_config(P, r, s) for r in tuned for s in personal_splits(P)])


def scaling(P: Profile) -> pd.DataFrame:
    """Each ladder model's test error (and personalized error) against its size."""
    train_all(P)
    configs = ladder_configs(P)
    runs = train_many(P, configs)
    rows = []
    for preset in pose_section(P).ladder:
        seeded = [r for c, r in zip(configs, runs, strict=True) if c.preset == preset]
        rows.append(_row(P, "ladder", seeded, personal=True))
    return pd.DataFrame(rows).drop(columns="role")


def distilled_config(P: Profile, teacher: Path, alpha: float, seed: int) -> TrainConfig:
    kd = dict(teacher=str(teacher), alpha=float(alpha), teacher_cache=True, seed=seed)
    return pose_config(P, pose_section(P).student, **kd)


def distillation(P: Profile) -> dict[str, pd.DataFrame]:
    """The largest ladder model as teacher, the student alone and distilled (the headline
    mixing weight, with personalized errors), and the sweep over the mixing weight."""
    train_all(P)
    pose, seeds = pose_section(P), P.pose_seeds()
    teachers = train_many(P, [pose_config(P, pose.ladder[-1], seed=s) for s in seeds])
    alphas = list(dict.fromkeys([pose.alpha, *pose.alphas]))
    alone_configs = [pose_config(P, pose.student, seed=s) for s in seeds]
    distilled_configs = [distilled_config(P, teachers[0], a, s) for a in alphas for s in seeds]
    trained = train_many(P, [*alone_configs, *distilled_configs])
    alone, distilled = trained[: len(seeds)], trained[len(seeds) :]
    by_alpha = {a: distilled[i * len(seeds) : (i + 1) * len(seeds)] for i, a in enumerate(alphas)}
    headline = by_alpha[pose.alpha]
    rows = [
        _row(P, "teacher", teachers, personal=True),
        _row(P, "student alone", alone, personal=True),
        _row(P, "student distilled", headline, personal=True, alpha=pose.alpha),
    ]
    table = pd.DataFrame(rows)
    table["size ratio"] = (table["parameters"].iloc[0] / table["parameters"]).round(1)
    sweep = pd.DataFrame(
        [_row(P, "student distilled", by_alpha[a], personal=False, alpha=a) for a in pose.alphas]
    )
    return {"pose_distillation": table, "pose_alpha": sweep}


def figure_runs(P: Profile) -> dict[str, Path]:
    """The figure's models: the teacher and the headline distilled student (first seed)."""
    pose, seed = pose_section(P), P.pose_seeds()[0]
    teacher = train_many(P, [pose_config(P, pose.ladder[-1], seed=seed)])[0]
    student = train_many(P, [distilled_config(P, teacher, pose.alpha, seed)])[0]
    return {"teacher": teacher, "distilled student": student}


@torch.no_grad()
def pose_window(P: Profile, run_dir: Path, seconds: float = 2.0) -> dict[str, np.ndarray]:
    """The first IK-free window of ``seconds`` of the first test stage: frame times (s),
    predicted and true angles (frames, 20) and the scored-frame mask, for the figures."""
    model, config = load_run(run_dir)
    path = load_pose_split(prepare_pose_corpus(P), pose_section(P).split).test[0]
    windows = PoseWindows([path], config.samples(seconds))
    batch = pose_collate([windows[0]])
    pred = model(batch["emg"], batch["input_lengths"]).float()
    target, mask = at_frames(batch, pred.shape[1], model.hop)
    times = (np.arange(pred.shape[1]) + 1) * model.hop / SAMPLE_RATE
    return {
        "time": times,
        "pred": pred[0].numpy(),
        "true": target[0].numpy(),
        "mask": mask[0].numpy(),
        "stage": np.array(path.stem),
    }


def mean_pose_errors(P: Profile) -> dict[str, dict[str, float]]:
    """The errors of always predicting the training stages' mean pose (a model that ignores
    the sEMG), scored as the models are: on the test tiles, at each frame's last sample
    (the hop of the ladder's first model), overall and per group."""
    pose = pose_section(P)
    split = load_pose_split(prepare_pose_corpus(P), pose.split)
    total, count = np.zeros(NUM_JOINTS), 0
    for path in split.train:
        session = PoseSession(path)
        _, angles, mask = session.read(0, len(session))
        total, count = total + angles[mask].astype(np.float64).sum(0), count + int(mask.sum())
    mean = torch.from_numpy(total / max(count, 1))
    hop, by = models.build(pose.ladder[0], **POSE).hop, _grouping(P)
    windows = PoseWindows(split.test, int(round(pose.window_s * SAMPLE_RATE)))
    overall, parts = PoseErrors(), {}
    for i in range(len(windows)):
        batch = pose_collate([windows[i]])
        target, mask = at_frames(batch, batch["angles"].shape[1] // hop, hop)
        key = windows.user(i) if by == "user" else windows.stage(i)
        for errors in (overall, parts.setdefault(key, PoseErrors())):
            errors.add(mean.expand_as(target), target.double(), mask)
    return {"overall": overall.summary(), **{k: e.summary() for k, e in sorted(parts.items())}}


def corpus_table(P: Profile) -> pd.DataFrame:
    """Stages, users, sides and minutes of each part of the profile's pose split."""
    split = load_pose_split(prepare_pose_corpus(P), pose_section(P).split)
    rows = []
    for part in ("train", "val", "test"):
        stages = [PoseSession(p) for p in getattr(split, part)]
        minutes = sum(len(s) for s in stages) / SAMPLE_RATE / 60
        rows.append(
            {
                "part": part,
                "stages": len(stages),
                "users": len({s.user for s in stages}),
                "sides": ", ".join(sorted({s.side for s in stages})),
                "minutes": round(minutes, 2),
            }
        )
    return pd.DataFrame(rows)
