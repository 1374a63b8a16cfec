"""What a training run checks before its first step, and the error that stops it when a
micro-batch does not fit the GPU: a run that trained for hours must not fail at its end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from semgkit import memory
from semgkit.data import TYPED_CONDITION, Split, load_split, typed_sessions
from semgkit.format import SAMPLE_RATE
from semgkit.pose import PoseSplit, load_pose_split
from semgkit.pose_train import is_pose
from semgkit.runs import TrainConfig, model_config, run_config
from semgkit.stitch import central_frames


def run_split(config: TrainConfig, resolved: Any) -> Split | PoseSplit:
    """The run's split (raises with a missing path named): emg2pose's for a pose model."""
    load = load_pose_split if is_pose(resolved) else load_split
    return load(config.data_dir, config.split)


def check_inputs(config: TrainConfig, resolved: Any) -> None:
    run_split(config, resolved)
    for name in ("init", "teacher"):
        run = getattr(config, name)
        if run and not (Path(run) / "config.json").is_file():
            raise FileNotFoundError(f"--{name} {run}: not a run directory (no config.json)")


def check_evaluable(config: TrainConfig, resolved: Any, model: nn.Module) -> None:
    """What the validation at the end (and ``semgkit eval``) needs, checked before the
    first step: a run that trained for hours must not fail there, nor every resume.
    A pose run scores every window frame by frame, so only CTC runs are checked."""
    if is_pose(resolved):
        return
    try:
        central_frames(model, config)
    except ValueError as err:
        raise ValueError(
            f"--window-s {config.window_s}: {err}, so validation and `semgkit eval` could "
            f"not score it; choose a multiple of {model.hop / SAMPLE_RATE:g} s"
        ) from None
    val = load_split(config.data_dir, config.split).val
    if val and not typed_sessions(val):
        raise ValueError(
            f"split {config.split!r}: none of its {len(val)} val session(s) has typed ground "
            f"truth (condition {TYPED_CONDITION}), so validation could not score any"
        )


def check_frame_rates(config: TrainConfig, resolved: Any) -> None:
    """Distillation pairs frames of one task: refuse a teacher of the other task or at
    another frame rate before any work."""
    teacher = model_config(run_config(config.teacher))
    if is_pose(teacher) != is_pose(resolved):
        task = "pose" if is_pose(resolved) else "CTC"
        raise ValueError(
            f"--teacher {config.teacher}: a {task} student needs a {task} teacher; this "
            f"teacher has the {'pose' if is_pose(teacher) else 'CTC'} head"
        )
    if teacher.hop != resolved.hop:
        raise ValueError(
            f"--teacher {config.teacher}: distillation needs teacher and student at the same "
            f"frame rate; the teacher hops {teacher.hop} samples per frame, the student "
            f"preset {config.preset!r} {resolved.hop}"
        )


def out_of_memory(
    config: TrainConfig, resolved: Any, device: torch.device, world: int, step: int, out: Path
) -> memory.GpuOutOfMemory:
    """The one-line error of a micro-batch too large for the GPU: the micro-batch that
    failed, the ``accumulate`` that would fit (projected from the measured memory per
    window, :mod:`semgkit.memory`), and the checkpoint kept. Nothing is written."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    teacher = model_config(run_config(config.teacher)) if config.teacher else None
    window = config.past_s + config.window_s + config.future_s
    gpu = memory.device_bytes(device)
    micro, fits = memory.oom_advice(
        resolved, window, config.batch_size, world, config.accumulate, gpu, teacher
    )
    where = f" (a GPU of {gpu / memory.GIB:.1f} GiB)" if gpu else ""
    if fits:
        advice = (
            f"accumulate {fits} (micro-batch {config.batch_size // (world * fits)}) would fit "
            f"(projected from the measured memory per window): rerun with --accumulate {fits} "
            f"--resume, or set [train] accumulate = {fits} in the profile"
        )
    else:
        advice = "no accumulate fits a micro-batch of one window: use a smaller preset or GPU"
    last = out / "last.pt"
    kept = f"{last} is kept" if last.is_file() else "no checkpoint written yet"
    return memory.GpuOutOfMemory(
        f"GPU out of memory at step {step + 1}{where}: a micro-batch of {micro} window(s) "
        f"(batch_size {config.batch_size} / ({world} process(es) x accumulate "
        f"{config.accumulate})) does not fit; {advice}; {kept}"
    )
