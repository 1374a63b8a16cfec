"""Where a number came from: the git revision, the CPU and device, and tables written
with that provenance beside them (CSV columns on every row, a Markdown header), so a table
separated from its run still says what it measured."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from semgkit.atomic import atomic_write


def git_revision() -> str:
    """Short hash of HEAD, with ``+dirty`` when the work tree has changes."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    try:
        rev = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name() -> str:
    """The device the book trains on, in words."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU {cpu_model()} ({torch.get_num_threads()} threads)"


def write_csv_md(
    df: pd.DataFrame,
    csv_path: Path,
    meta: dict[str, Any],
    title: str,
    notes: str = "",
    floatfmt: str = "g",
) -> Path:
    """``csv_path`` with ``meta`` as extra columns on every row, and beside it a Markdown
    file with ``meta`` as a header above the table; both written atomically."""
    atomic_write(csv_path, df.assign(**meta).to_csv(index=False))
    header = [f"# {title}", ""] + [f"- {k}: {v}" for k, v in meta.items()]
    if notes:
        header += ["", notes]
    table = df.to_markdown(index=False, floatfmt=floatfmt)
    atomic_write(csv_path.with_suffix(".md"), "\n".join(header) + "\n\n" + table + "\n")
    return csv_path
