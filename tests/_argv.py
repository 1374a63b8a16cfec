"""Command lines several test files run: one spelling of each, so a flag renamed in the CLI
is renamed here once."""

from __future__ import annotations

import sys
from pathlib import Path

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone"]


def train_argv(corpus: Path, out: Path, *flags: str) -> list[str]:
    """``semgkit train`` of the lap-student preset on ``corpus`` into ``out``."""
    return ["train", "--data", str(corpus), "--preset", "lap-student", "--out", str(out), *flags]


def distill_argv(corpus: Path, teacher: Path, out: Path) -> list[str]:
    """``semgkit distill`` of a lap-student from ``teacher`` at temperature 2, alpha 0.5."""
    flags = "--preset lap-student --temperature 2 --alpha 0.5".split()
    return ["distill", "--data", str(corpus), "--teacher", str(teacher), *flags, "--out", str(out)]
