"""Runs on disk: the training recipe, run directories and checkpoints.

A run is a directory: ``config.json`` (the full resolved :class:`TrainConfig`),
``metrics.jsonl``, ``last.pt`` and ``best.pt``, and ``done.json`` once finished. Every
file is written through a temporary name, so a run killed at any point leaves no half
file behind. One process at a time owns a run directory (:func:`open_run` holds a lock
on ``.lock``), and Ctrl-C ends a run at a step boundary with a checkpoint
(:class:`semgkit.stopping.StopOnInterrupt`). Reading a run's recipe (:func:`run_config`) never loads its
weights.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semgkit import models, paper
from semgkit.atomic import atomic_write
from semgkit.charset import CHARSET
from semgkit.checkpoint import WEIGHT_KEYS, load_checkpoint
from semgkit.format import SAMPLE_RATE


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Defaults are the paper's recipe (semgkit.paper)."""

    data_dir: str
    split: str = "generic"
    preset: str = "tiny"
    model: dict = field(default_factory=dict)  # overrides of the preset's fields
    steps: int = 1000
    batch_size: int = 32  # global: split over processes and accumulation micro-steps
    accumulate: int = 1
    lr: float = 5e-4
    weight_decay: float = paper.WEIGHT_DECAY
    warmup_frac: float = paper.WARMUP_FRAC
    grad_clip: float = paper.GRAD_CLIP
    window_s: float = paper.WINDOW_S
    past_s: float = paper.PAST_S
    future_s: float = paper.FUTURE_S
    augment: bool = True
    seed: int = 0  # initial weights, dropout and time masks; the data too unless data_seed
    data_seed: int | None = None  # the windows, their order and augmentation (None: seed)
    num_threads: int = 0  # 0: leave torch's default
    num_workers: int = -1  # DataLoader worker processes; -1: loader.auto_workers decides
    checkpoint_every: int = 0  # 0: only at the end
    val_every: int = 0  # 0: only at the end
    val_windows: int = 64
    init: str = ""  # a run directory whose weights start this run (personalization)
    teacher: str = ""  # a run directory: distil from it (semgkit.distill)
    temperature: float = 2.0
    alpha: float = 0.5
    teacher_cache: bool | str = False

    def samples(self, seconds: float) -> int:
        return int(round(seconds * SAMPLE_RATE))

    def order_seed(self) -> int:
        """The seed of the data a run sees: runs that differ only in ``seed`` and share a
        ``data_seed`` train on the same windows (a paired comparison, and a distilled
        student's teacher outputs are then computed once, see semgkit.distill)."""
        return self.seed if self.data_seed is None else self.data_seed


LOCK = ".lock"
RUN_FILES = {"config.json", "metrics.jsonl", "last.pt", "best.pt", "done.json", LOCK}
FLAGS = {  # fields a `semgkit train` flag sets: --NAME-WITH-DASHES
    name: "--" + name.replace("_", "-")
    for name in ("steps", "batch_size", "lr", "window_s", "checkpoint_every")
}
CHECKPOINT_S = 600.0  # default time between periodic checkpoints (besides checkpoint_every)


def check_config(config: TrainConfig) -> None:
    """Refuse values that cannot train, naming the field (and its CLI flag), before any work."""

    def need(name: str, ok: bool, what: str) -> None:
        if not ok:
            flag = FLAGS.get(name)
            where = f"{flag} {getattr(config, name)}" if flag else f"{name}={getattr(config, name)}"
            raise ValueError(f"{where}: must be {what}")

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for name in ("steps", "batch_size", "accumulate", "val_windows"):
        need(name, whole(getattr(config, name)) and getattr(config, name) >= 1, "an integer >= 1")
    for name in ("checkpoint_every", "val_every", "num_threads", "seed"):
        need(name, whole(getattr(config, name)) and getattr(config, name) >= 0, "an integer >= 0")
    ok = config.data_seed is None or (whole(config.data_seed) and config.data_seed >= 0)
    need("data_seed", ok, "an integer >= 0 or None (the seed)")
    need("num_workers", whole(config.num_workers) and config.num_workers >= -1, "-1 (auto) or >= 0")
    for name in ("lr", "window_s", "grad_clip"):
        v = getattr(config, name)
        need(name, isinstance(v, int | float) and math.isfinite(v) and v > 0, "a number > 0")
    for name in ("past_s", "future_s", "weight_decay"):
        v = getattr(config, name)
        need(name, isinstance(v, int | float) and math.isfinite(v) and v >= 0, "a number >= 0")
    need("warmup_frac", 0 <= config.warmup_frac <= 1, "in [0, 1]")


UNWEIGHED = ("num_workers",)  # TrainConfig fields a run's weights do not depend on
# Fields a resume may change: how each global batch is split into micro-batches (after a
# GPU ran out of memory, semgkit.memory). The windows and the recipe stay; the weights are
# then not bitwise an uninterrupted run's (time masks are drawn per micro-batch).
RESPLITTABLE = ("accumulate",)


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file: a kill never leaves half a checkpoint."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # serialized first, so a disk error is a plain OSError
    atomic_write(path, buffer.getbuffer())


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=1, default=str))


def config_diff(saved: dict[str, Any], config: TrainConfig) -> tuple[list[str], list[str]]:
    """(differences, accepted) between a run's saved config and ``config``.

    ``field: saved -> new`` for every field that differs, except those the weights do not
    depend on (``UNWEIGHED``: resume with other workers) and ``RESPLITTABLE``. A field
    ``saved`` lacks (written by a semgkit that did not have it) is accepted when ``config``
    holds its default, the value the older code behaved as; such fields are returned in
    ``accepted``. A field this version does not know (written by a newer one) always
    differs: its meaning, and whether the weights depend on it, are unknown here."""
    new = json.loads(json.dumps(asdict(config)))
    defaults = json.loads(json.dumps(_defaults()))
    diff, accepted = [], []
    for k in sorted((set(saved) | set(new)) - set(UNWEIGHED) - set(RESPLITTABLE)):
        if k not in new:
            diff.append(f"{k}: {saved[k]!r} -> (not a field of this semgkit version)")
        elif k not in saved and new[k] == defaults.get(k, object()):
            accepted.append(f"{k}={new[k]!r}")
        elif k not in saved:
            diff.append(f"{k}: (absent, i.e. the default {defaults[k]!r}) -> {new[k]!r}")
        elif saved[k] != new[k]:
            diff.append(f"{k}: {saved[k]!r} -> {new[k]!r}")
    return diff, accepted


def _defaults() -> dict[str, Any]:
    """TrainConfig's default value of every field that has one."""
    out = {}
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def saved_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json`` as a dict; anything else is an error naming the file."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable run config ({err})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a run config (a JSON {type(saved).__name__})")
    return saved


class RunInUse(OSError):
    """Another live process holds the run directory."""


@contextlib.contextmanager
def open_run(out: Path, config: TrainConfig, resume: bool) -> Iterator[bool]:
    """Own run directory ``out`` for one run; yields whether to resume from ``last.pt``.

    A lock (``fcntl.flock`` on ``out/.lock``, released by the kernel when its holder dies,
    so a crashed run leaves no stale lock) refuses a second writer. A directory without
    ``last.pt`` holds nothing worth keeping (a run killed or stopped before its first
    checkpoint): its run files are cleared and training starts over, with or without
    ``resume``. Files that are not a run's are never touched: the directory is refused."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run directory {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = (out / LOCK).open("a+")
    except OSError as err:
        raise OSError(err.errno, f"run directory {out}: cannot write ({err.strerror})") from err
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunInUse(
                f"run directory {out} is in use by another process (pid {holder}); "
                "wait for it to end or stop it"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        for debris in out.glob(".*.tmp"):  # a write cut by a kill
            debris.unlink()
        names = {p.name for p in out.iterdir()}
        if "last.pt" in names:
            if not resume:
                raise FileExistsError(
                    f"run directory {out} is not empty; pass --resume to continue it"
                )
            saved = saved_config(out / "config.json")
            diff, accepted = config_diff(saved, config)
            if diff:
                raise ValueError(
                    f"--resume: {out / 'config.json'} holds a different config than this "
                    f"run ({'; '.join(diff)})"
                )
            resplit = [k for k in RESPLITTABLE if saved.get(k, 1) != getattr(config, k)]
            if resplit:
                print(
                    f"note: resuming {out} with {', '.join(f'{k}={getattr(config, k)}' for k in resplit)} "
                    "(the same global batches in other micro-batches)",
                    file=sys.stderr,
                )
            if accepted:
                print(
                    f"note: {out / 'config.json'} was written by another semgkit version, "
                    f"without {', '.join(accepted)}; resuming with these defaults",
                    file=sys.stderr,
                )
        elif names - RUN_FILES:
            raise FileExistsError(
                f"run directory {out} holds files that are not a run's "
                f"({sorted(names - RUN_FILES)[:3]}); choose an empty or new directory"
            )
        else:
            for name in names - {LOCK}:
                (out / name).unlink()
        yield "last.pt" in names


def trim_log(path: Path, step: int) -> None:
    """Keep the metrics rows up to a resumed checkpoint's step: a killed run may have
    logged later steps (the resumed run logs them again) and torn its last line."""
    keep = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # torn by the kill: nothing was written after it
        if row["step"] > step:
            break
        keep.append(line + "\n")
    atomic_write(path, "".join(keep))


def model_config(config: TrainConfig) -> Any:
    """The run's resolved model configuration (the preset with its overrides)."""
    return models.resolve(config.preset, **config.model)


def build_model(config: TrainConfig) -> nn.Module:
    return models.build(config.preset, **config.model)


def checkpoint_state(model: nn.Module, config: TrainConfig, resolved: Any) -> dict[str, Any]:
    """What every checkpoint carries besides the training state: weights and their model."""
    return {
        "model": model.state_dict(),
        "preset": config.preset,
        "model_config": models.config_dict(resolved),
        "charset": CHARSET.chars,
    }


def load_weights(
    model: nn.Module,
    path: Path,
    config: TrainConfig,
    resolved: Any | None = None,
    needs: tuple[str, ...] = WEIGHT_KEYS,
) -> dict[str, Any]:
    """Load a checkpoint's weights into ``model``; returns the checkpoint's contents.

    A checkpoint trained for another model or charset is refused naming the file (a
    ``last.pt`` copied from another run too). ``resolved`` is ``model_config(config)``
    when the caller has it already; ``needs`` the keys the caller reads besides."""
    state = load_checkpoint(path, needs)
    if state.get("charset") != CHARSET.chars:
        raise ValueError(f"{path}: checkpoint was trained with another character set")
    expected = model_config(config) if resolved is None else resolved
    try:
        same = models.resolve(state["model_config"]) == expected
    except (TypeError, ValueError, AttributeError):
        same = False
    if not same:
        raise ValueError(
            f"{path}: checkpoint is a {state['preset']!r} model, not {config.preset!r} "
            "with these model settings"
        )
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(
            f"{path}: weights do not fit the model ({str(err).splitlines()[0]})"
        ) from err
    return state


def config_from_json(path: str | Path) -> TrainConfig:
    """A TrainConfig saved as JSON; unknown fields are an error naming them."""
    raw = json.loads(Path(path).read_text())
    unknown = sorted(set(raw) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"{path}: unknown TrainConfig field(s) {unknown}")
    return TrainConfig(**raw)


def run_config(run_dir: str | Path) -> TrainConfig:
    """A run's TrainConfig, read from its ``config.json`` without loading any weights.

    Fields this version does not know (written by a newer one) are ignored."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no config.json)")
    raw = json.loads(path.read_text())
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in raw.items() if k in known})


def load_run(run_dir: str | Path, which: str = "best") -> tuple[nn.Module, TrainConfig]:
    """A trained run's model (eval mode) and its TrainConfig."""
    run = Path(run_dir)
    path = run / f"{which}.pt"
    if not (run / "config.json").is_file() or not path.is_file():
        raise FileNotFoundError(f"{run}: not a finished run (needs config.json and {path.name})")
    config = run_config(run)
    model = build_model(config)
    load_weights(model, path, config)
    return model.eval(), config
