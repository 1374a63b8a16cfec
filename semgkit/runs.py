"""Runs on disk: the training recipe, run directories and checkpoints.

A run is a directory: ``config.json`` (the full resolved :class:`TrainConfig`),
``metrics.jsonl``, ``last.pt`` and ``best.pt``, and ``done.json`` once finished. Every
file is written through a temporary name, so a run killed at any point leaves no half
file behind. Reading a run's recipe (:func:`run_config`) never loads its weights.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semgkit import models, paper
from semgkit.charset import CHARSET
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
    seed: int = 0
    num_threads: int = 0  # 0: leave torch's default
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


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through a temporary file: a kill never leaves half a checkpoint."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)


def same_config(path: Path, config: TrainConfig) -> bool:
    """Whether the run's ``config.json`` at ``path`` holds exactly ``config``."""
    return json.loads(path.read_text()) == json.loads(json.dumps(asdict(config)))


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
    model: nn.Module, path: Path, config: TrainConfig, resolved: Any | None = None
) -> None:
    """Load a checkpoint's weights, refusing one trained for another model or charset.

    ``resolved`` is ``model_config(config)`` when the caller has it already."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("charset") != CHARSET.chars:
        raise ValueError(f"{path}: checkpoint was trained with another character set")
    expected = model_config(config) if resolved is None else resolved
    if models.resolve(state["model_config"]) != expected:
        raise ValueError(
            f"{path}: checkpoint is a {state['preset']!r} model, not {config.preset!r} "
            "with these model settings"
        )
    model.load_state_dict(state["model"])


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
