"""The ``semgkit train`` and ``semgkit distill`` commands: flags -> a ``TrainConfig`` -> :func:`fit`.

Distillation is training with a teacher, so both commands drive the one engine in
:mod:`semgkit.train`; this module only turns flags into its arguments.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from semgkit import models
from semgkit.runs import CHECKPOINT_S, TrainConfig, config_from_json, run_config
from semgkit.train import fit

# `semgkit train`'s flags, each one TrainConfig field: (flag, field, type, help). A flag
# left out keeps the --config file's value, else TrainConfig's default (shown in --help).
TRAIN_FLAGS = (
    ("--data", "data_dir", str, "corpus directory (emg2qwerty layout)"),
    ("--split", "split", str, "split name: DATA/splits/NAME.yaml"),
    ("--preset", "preset", str, f"model preset: {sorted(models.PRESETS)}"),
    ("--steps", "steps", int, "optimizer steps"),
    ("--batch-size", "batch_size", int, "global batch size"),
    (
        "--accumulate",
        "accumulate",
        int,
        "micro-batches per step (batch = processes x accumulate x micro-batch); a resume "
        "may change it, e.g. after the GPU ran out of memory",
    ),
    ("--lr", "lr", float, "peak learning rate"),
    ("--window-s", "window_s", float, "window length, seconds"),
    ("--seed", "seed", int, "initial weights, dropout, time masks"),
    ("--data-seed", "data_seed", int, "the windows, their order and augmentation (None: --seed)"),
    ("--checkpoint-every", "checkpoint_every", int, "checkpoint period, steps (0: at the end)"),
    (
        "--num-workers",
        "num_workers",
        int,
        "DataLoader worker processes (-1: none on CPU, on a GPU the process's share of the "
        "cores but one); the weights do not depend on it",
    ),
)


def add_cli(subparsers: Any) -> None:
    """The ``train`` and ``distill`` subcommands (distillation is training with a teacher)."""
    p = subparsers.add_parser("train", help="train a model preset with CTC")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="a TrainConfig as JSON (a run's config.json, or one from `tools/book.py plan`); "
        "the flags below override its fields",
    )
    p.add_argument("--out", required=True, type=Path, help="run directory")
    for flag, name, kind, text in TRAIN_FLAGS:
        default = getattr(TrainConfig, name, "none: required without --config")
        help_text = f"{text} (default {default})".replace("%", "%%")
        metavar = flag[2:].upper().replace("-", "_")
        p.add_argument(
            flag, dest=name, type=kind, default=argparse.SUPPRESS, metavar=metavar, help=help_text
        )
    _add_run_flags(p)
    p.set_defaults(func=_train_cli)
    _add_distill_cli(subparsers)


def _train_cli(args: argparse.Namespace) -> int:
    flags = {name: getattr(args, name) for _, name, _, _ in TRAIN_FLAGS if hasattr(args, name)}
    if args.config:
        config = replace(config_from_json(args.config), **flags)
    elif "data_dir" not in flags or "preset" not in flags:
        raise ValueError("semgkit train: pass --config FILE, or --data and --preset")
    else:
        config = TrainConfig(**flags)
    if not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f"--data {config.data_dir}: no such directory")
    print(fit(config, args.out, resume=args.resume, checkpoint_s=_checkpoint_s(args)))
    return 0


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue OUT from last.pt (starts over when OUT holds no checkpoint)",
    )
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=CHECKPOINT_S / 60,
        help="also write OUT/last.pt this often (default %(default)g), so a killed run "
        "resumes from at most this far back",
    )


def _checkpoint_s(args: argparse.Namespace) -> float:
    if not args.checkpoint_minutes > 0:  # also NaN
        raise ValueError(f"--checkpoint-minutes {args.checkpoint_minutes}: must be > 0")
    return args.checkpoint_minutes * 60


def _add_distill_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "distill",
        help="train a student with CTC plus the teacher's softened outputs",
        description="Distil a trained teacher run into a student preset. The student uses "
        "the teacher run's recipe (split, windows, optimizer, seed) unless a flag says otherwise.",
    )
    p.add_argument("--data", required=True, help="corpus directory (emg2qwerty layout)")
    p.add_argument("--teacher", required=True, help="the teacher's run directory")
    p.add_argument("--preset", required=True, help="student model preset")
    p.add_argument("--temperature", type=float, required=True, help="softening temperature T")
    p.add_argument("--alpha", type=float, required=True, help="weight of the KD term, in [0, 1]")
    p.add_argument("--out", required=True, help="the student's run directory")
    p.add_argument("--split", default=None, help="split name (default: the teacher's)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: teacher's)")
    _add_run_flags(p)
    p.add_argument(
        "--teacher-cache",
        action="store_true",
        help="cache the teacher's outputs under TEACHER/teacher_cache for later runs",
    )
    p.set_defaults(func=_distill_cli)


def _distill_cli(args: argparse.Namespace) -> int:
    if not Path(args.teacher).is_dir():
        raise FileNotFoundError(f"--teacher {args.teacher}: no such run directory")
    overrides = {
        "data_dir": str(args.data),
        "preset": args.preset,
        "teacher": str(args.teacher),
        "temperature": args.temperature,
        "alpha": args.alpha,
        "teacher_cache": bool(args.teacher_cache),
    }
    if args.split:
        overrides["split"] = args.split
    if args.steps is not None:
        overrides["steps"] = args.steps
    config = replace(run_config(args.teacher), **overrides)
    print(fit(config, args.out, resume=args.resume, checkpoint_s=_checkpoint_s(args)))
    return 0
