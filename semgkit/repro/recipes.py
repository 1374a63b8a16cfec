"""Run recipes from a profile: the one place a profile becomes a :class:`TrainConfig`.

Every run the book trains, the profile's corpus and where each run is cached come from
here; nothing in this module trains or evaluates (:mod:`semgkit.repro.schedule` does).
A run's cache directory is named by a hash of its full configuration
(:func:`semgkit.repro.cache.config_key`), so a changed recipe never reuses a stale run.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

from semgkit import models, synth
from semgkit.data import load_split, personal_splits
from semgkit.repro.cache import config_key
from semgkit.repro.profiles import Profile
from semgkit.runs import TrainConfig, run_config


@functools.cache
def prepare_corpus(P: Profile) -> Path:
    """The profile's data directory; the synthetic corpus is generated on first use.

    Derived once per profile and process: every later call returns the same path."""
    root = P.corpus_dir()
    if P.corpus.source == "synthetic":
        return synth.generate(root, preset=P.corpus.preset, seed=P.seed)
    split = P.corpus.split
    if not (root / "splits" / f"{split}.yaml").is_file():
        raise FileNotFoundError(
            f"{root}: no emg2qwerty data with splits/{split}.yaml here (profile {P.name}); "
            f"download it with `python -m data_download emg2qwerty --dest {root} --split "
            f"{split}` and pass DATA={root}"
        )
    return root


def peak_lr(P: Profile, preset: str) -> float:
    """The preset's peak learning rate under the profile.

    With ``train.lr_width_product`` set, a transformer of width ``d_model`` gets
    ``min(train.lr, lr_width_product / d_model)``: Adam's best rate falls roughly as
    1/width (as in muP), so one rate for every size over-drives the wide models; the cap
    keeps the narrowest ones from collapsing to all-blank CTC output. Models without a
    width (the TDS-ConvNet) and profiles without the key use ``train.lr``."""
    t = P.train
    config = models.PRESETS.get(preset)
    if t.lr_width_product and isinstance(config, models.ModelConfig):
        return min(float(t.lr), float(t.lr_width_product) / config.d_model)
    return float(t.lr)


def train_config(P: Profile, preset: str, **overrides: Any) -> TrainConfig:
    """The profile's training recipe for one preset; overrides win.

    Fields the profile does not set keep TrainConfig's defaults; every run checkpoints
    four times (at least 50 steps apart) and trains on the profile's data seed."""
    w, t = P.window, P.train
    base = TrainConfig(
        data_dir=str(prepare_corpus(P)),
        split=P.corpus.split,
        preset=preset,
        steps=int(t.steps),
        batch_size=int(t.batch_size),
        accumulate=int(t.accumulate),
        lr=peak_lr(P, preset),
        window_s=float(w.window_s),
        past_s=float(w.past_s),
        future_s=float(w.future_s),
        seed=int(P.seed),
        data_seed=int(P.seed),  # a run's other seeds vary its weights, not its data
        num_threads=int(t.num_threads),
        num_workers=int(t.num_workers),
        checkpoint_every=max(50, int(t.steps) // 4),
        val_windows=int(t.val_windows),
    )
    return replace(base, **overrides)


def run_dir(P: Profile, config: TrainConfig) -> Path:
    """Where the book keeps (or looks for) the run of ``config``."""
    return P.build_dir / "cache" / "runs" / f"{config.preset}-{config_key(config)}"


def scaling_configs(P: Profile) -> list[TrainConfig]:
    """Table 2's generic runs: each ladder model and the baseline, with each of its seeds."""
    presets = [*P.scaling.ladder, P.scaling.baseline]
    return [train_config(P, p, seed=s) for p in presets for s in P.model_seeds(p)]


def teacher_config(P: Profile) -> TrainConfig:
    """The teacher every student learns from: the first seed's run of the teacher preset."""
    return train_config(P, P.distill.teacher, seed=P.model_seeds(P.distill.teacher)[0])


def distilled_config(
    P: Profile, teacher_run: Path, temperature: float, alpha: float, **overrides: Any
) -> TrainConfig:
    """The student trained with the teacher's softened outputs, at the same budget as alone."""
    return train_config(
        P,
        P.distill.student,
        teacher=str(teacher_run),
        temperature=float(temperature),
        alpha=float(alpha),
        teacher_cache=True,
        **overrides,
    )


def planned_configs(P: Profile) -> list[TrainConfig]:
    """Every generic and distillation run of chapters 3 and 4, teachers before students.

    Personalization runs are left out: they start from these and are short."""
    s, d = P.scaling, P.distill
    configs = [teacher_config(P)]
    configs += [
        train_config(P, p, seed=seed)
        for p in [*s.ladder, s.baseline, d.teacher]
        for seed in P.model_seeds(p)
    ]
    configs += [train_config(P, d.student, seed=seed) for seed in P.student_seeds()]
    teacher = run_dir(P, configs[0])
    pairs = [(d.temperature, d.alpha, seed) for seed in P.student_seeds()]
    pairs += [(t, d.alpha, seed) for t in d.temperatures for seed in P.seeds()]
    pairs += [(d.temperature, a, seed) for a in d.alphas for seed in P.seeds()]
    configs += [distilled_config(P, teacher, t, a, seed=seed) for t, a, seed in pairs]
    unique = {config_key(c): c for c in configs}  # insertion order: teachers first
    return list(unique.values())


def test_users(P: Profile) -> list[str]:
    """The users fine-tuned on their own sessions: the split's held-out test users (the
    first ``personalize_users``); none in the single-user setting, trained on its user."""
    if P.measure() == "single-user":
        return []
    users = list(load_split(prepare_corpus(P), P.corpus.split).test_users)
    limit = P.train.personalize_users
    return users[:limit] if limit else users


def personal_split(P: Profile, user: str) -> str:
    """The name of test user ``user``'s personalized split."""
    data = prepare_corpus(P)
    splits = personal_splits(data)
    if user not in splits:
        raise KeyError(f"{data}/splits: no personalized split for test user {user!r}")
    return splits[user]


def personal_recipe(P: Profile, run_dir: Path) -> tuple[int, float]:
    """(steps, learning rate) of fine-tuning the generic run ``run_dir`` on one user."""
    lr = run_config(run_dir).lr * float(P.train.personalize_lr_fraction)
    return int(P.train.personalize_steps), lr


def personal_dir(P: Profile, run_dir: Path, user: str) -> Path:
    """Where the book keeps the generic run fine-tuned on ``user``'s own sessions."""
    steps, lr = personal_recipe(P, run_dir)
    key = config_key(run_config(run_dir), {"user": user, "steps": steps, "lr": lr})
    return run_dir.parent.parent / "personal" / f"{run_dir.name}-{personal_split(P, user)}-{key}"
