"""The book's cache keys: a cached run or benchmark is reused only while the method's
code, the numeric stack and the settings that decide it are unchanged.

The key is structural: it hashes every module of the method, the ``semgkit`` package
itself (``semgkit/*.py``), and none of this apparatus subpackage. A new or split method
module is in the key without anyone listing it; a change to a table, a figure or the
prose re-runs nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from semgkit import bench
from semgkit.atomic import atomic_write
from semgkit.runs import TrainConfig

METHOD = Path(__file__).resolve().parent.parent  # the semgkit package


def method_modules(package: Path = METHOD) -> tuple[Path, ...]:
    """The method's modules: every ``*.py`` directly in ``package`` (subpackages aside)."""
    return tuple(sorted(package.glob("*.py")))


def method_hash(salt: str = "", package: Path = METHOD) -> str:
    """SHA-256 (hex) of ``salt`` and every method module's name and source."""
    h = hashlib.sha256(salt.encode())
    for path in method_modules(package):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


@functools.cache
def code_version() -> str:
    """Hash of the method's code and of the numeric stack a run computes with."""
    return method_hash(f"torch {torch.__version__} numpy {np.__version__}")[:16]


def config_key(config: TrainConfig, extra: dict[str, Any] | None = None) -> str:
    """A run's cache key: its whole configuration, ``extra`` settings and the code."""
    payload = json.dumps(
        {"config": asdict(config), "extra": extra or {}, "code": code_version()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def cached_bench(cfg: bench.BenchConfig, cache_dir: str | Path) -> tuple[pd.DataFrame, bool]:
    """``run_bench(cfg)`` measured once per settings, code and machine; (table, was cached).

    A later call with the same settings on the same machine and code reads the earlier
    measurement, so re-executing the book after a prose edit does not re-benchmark.
    Delete ``cache_dir`` to measure again."""
    settings = json.dumps([asdict(cfg), bench.machine_info(cfg.threads)], default=str)
    path = Path(cache_dir) / f"bench-{method_hash(settings)[:12]}.csv"
    if path.is_file():
        return pd.read_csv(path), True
    df = bench.run_bench(cfg)
    atomic_write(path, df.to_csv(index=False))
    return df, False
