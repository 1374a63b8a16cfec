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


def add_cli(subparsers: Any) -> None:
    """The ``train`` and ``distill`` subcommands (distillation is training with a teacher)."""
    p = subparsers.add_parser("train", help="train a model preset with CTC")
    p.add_argument(
        "--config", type=Path, default=None,
        help="a TrainConfig as JSON (a run's config.json, or one from `tools/book.py plan`); "
        "the flags below override its fields",
    )  # fmt: skip
    p.add_argument("--data", default=None, help="corpus directory (emg2qwerty layout)")
    p.add_argument("--split", default=None, help="split name: DATA/splits/NAME.yaml (generic)")
    p.add_argument("--preset", default=None, help=f"model preset: {sorted(models.PRESETS)}")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument(
        "--accumulate", type=int, default=None,
        help="micro-batches per step (batch = processes x accumulate x micro-batch); a "
        "resume may change it, e.g. after the GPU ran out of memory",
    )  # fmt: skip
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--window-s", type=float, default=None, help="window length, seconds")
    p.add_argument("--seed", type=int, default=None, help="initial weights, dropout, time masks")
    p.add_argument(
        "--data-seed", type=int, default=None,
        help="the windows, their order and augmentation (default: --seed)",
    )  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint period, steps")
    _add_run_flags(p)
    p.add_argument(
        "--num-workers", type=int, default=None,
        help="DataLoader worker processes (default -1: none on CPU, on a GPU the process's "
        "share of the cores but one); the weights do not depend on it",
    )  # fmt: skip
    p.set_defaults(func=_train_cli)
    _add_distill_cli(subparsers)


def _train_cli(args: argparse.Namespace) -> int:
    flags = {
        "data_dir": args.data, "split": args.split, "preset": args.preset,
        "steps": args.steps, "batch_size": args.batch_size, "accumulate": args.accumulate,
        "lr": args.lr,
        "window_s": args.window_s, "seed": args.seed, "data_seed": args.data_seed,
        "checkpoint_every": args.checkpoint_every, "num_workers": args.num_workers,
    }  # fmt: skip
    overrides = {k: v for k, v in flags.items() if v is not None}
    if args.config:
        config = replace(config_from_json(args.config), **overrides)
    elif args.data is None or args.preset is None:
        raise ValueError("semgkit train: pass --config FILE, or --data and --preset")
    else:
        config = TrainConfig(**overrides)
    if not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f"--data {config.data_dir}: no such directory")
    print(fit(config, args.out, resume=args.resume, checkpoint_s=_checkpoint_s(args)))
    return 0


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--resume", action="store_true",
        help="continue OUT from last.pt (starts over when OUT holds no checkpoint)",
    )  # fmt: skip
    p.add_argument(
        "--checkpoint-minutes", type=float, default=CHECKPOINT_S / 60,
        help="also write OUT/last.pt this often (default %(default)g), so a killed run "
        "resumes from at most this far back",
    )  # fmt: skip


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
