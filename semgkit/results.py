"""Result tables: every table the book prints is also written to ``build/results``.

Each file records where its numbers came from (profile, data source, device, wall time,
seed, git revision) so a table separated from the book still says what it measured.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import torch

PACKAGE = Path(__file__).resolve().parent


def git_revision() -> str:
    """Short hash of HEAD, with ``+dirty`` when the work tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def source_hash(modules: tuple[str, ...], salt: str = "") -> str:
    """SHA-256 (hex) of ``salt`` and the source of the named ``semgkit`` modules: a cache
    key part that changes exactly when the code deciding a cached result changes."""
    h = hashlib.sha256(salt.encode())
    for name in modules:
        h.update(name.encode() + (PACKAGE / f"{name}.py").read_bytes())
    return h.hexdigest()


def device_name() -> str:
    """The device the book trains on, in words."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def atomic_write(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` through a temporary file: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_table(
    df: pd.DataFrame,
    name: str,
    build_dir: str | Path,
    *,
    profile: dict[str, Any],
    wall_time_s: float,
    title: str = "",
    notes: str = "",
) -> Path:
    """Write ``<build>/results/<name>.csv`` and ``.md``; returns the CSV path.

    The CSV carries the provenance as extra columns on every row so it stays
    self-describing; the Markdown file puts it in a header above the table.
    """
    meta = {
        "profile": profile.get("name", ""),
        "data_source": profile["corpus"].get("source", "synthetic"),
        "device": device_name(),
        "wall_time_s": round(float(wall_time_s), 1),
        "seed": profile.get("seed", 0),
        "git_revision": git_revision(),
    }
    out = Path(build_dir) / "results"
    csv_path = out / f"{name}.csv"
    atomic_write(csv_path, df.assign(**meta).to_csv(index=False))
    header = [f"# {title or name}", ""]
    header += [f"- {k}: {v}" for k, v in meta.items()]
    if notes:
        header += ["", notes]
    atomic_write(
        out / f"{name}.md", "\n".join(header) + "\n\n" + df.to_markdown(index=False) + "\n"
    )
    return csv_path
