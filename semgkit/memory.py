"""GPU memory of training: measured per window on CPU, projected per GPU class.

What a micro-batch needs is the model's fixed state (fp32 weights, gradients and AdamW's
two moments: 16 bytes a parameter) plus the activations autograd keeps for the backward
pass, which grow with the windows in the micro-batch. The second is *measured*: one
forward pass on CPU with the training shapes, counting the bytes of every distinct
tensor storage autograd saves for backward (``torch.autograd.graph.saved_tensors_hooks``).
That is fp32; under the bf16 autocast training uses on a GPU many saved tensors are half
as large, so the projection from it errs on the safe side. Transient buffers of the
backward pass and the CUDA context are not counted: ``HEADROOM`` leaves room for them.
Everything derived for a GPU is a projection, labelled so.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from semgkit import models
from semgkit.format import BANDS, ELECTRODES, SAMPLE_RATE

GPU_CLASSES_GB = (16, 24, 40, 80)  # Colab/T4-V100 class, A10/4090, A100-40, A100/H100-80
HEADROOM = 0.85  # share of a GPU's memory the projection lets training use
STATE_BYTES_PER_PARAM = 16  # fp32 weights + gradients + AdamW exp_avg + exp_avg_sq
GIB = 2**30


class GpuOutOfMemory(MemoryError):
    """Training ran out of GPU memory; the message names the micro-batch that fits."""


def activation_bytes(preset: str | Any, window_s: float, batch: int = 1) -> int:
    """Bytes autograd saves for backward in one training forward pass of ``batch`` windows
    of ``window_s`` seconds (context included), measured on CPU in fp32."""
    model = models.build(preset)
    model.train()
    x = torch.randn(batch, int(round(window_s * SAMPLE_RATE)), len(BANDS), ELECTRODES)
    seen: dict[tuple[int, int], int] = {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params:  # weights are counted in the fixed state
            seen[(ptr, storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(seen.values())


def per_window_bytes(preset: str | Any, window_s: float) -> int:
    """Activation bytes one more window adds to a micro-batch (batch 2 minus batch 1, so
    what does not grow with the batch is left out)."""
    return max(activation_bytes(preset, window_s, 2) - activation_bytes(preset, window_s, 1), 1)


def state_bytes(preset: str | Any, teacher: str | Any | None = None) -> int:
    """Fixed bytes of training ``preset``: its weights, gradients and AdamW moments, plus a
    teacher's fp32 weights when it distils from one."""
    fixed = STATE_BYTES_PER_PARAM * models.count_params(models.build(preset))
    if teacher is not None:
        fixed += 4 * models.count_params(models.build(teacher))
    return fixed


def micro_batch_that_fits(per_window: int, fixed: int, gpu_bytes: float) -> int:
    """The largest micro-batch (windows) a GPU of ``gpu_bytes`` holds (a projection); 0 when
    not even the fixed state fits."""
    room = HEADROOM * gpu_bytes - fixed
    return max(int(room // per_window), 0)


def accumulate_that_fits(batch_size: int, world: int, accumulate: int, fits: int) -> int | None:
    """The smallest ``accumulate`` (at least the current one) whose micro-batch,
    ``batch_size / (world x accumulate)`` windows, is at most ``fits``; None if none is."""
    per_process = batch_size // world
    for a in range(max(accumulate, 1), per_process + 1):
        if per_process % a == 0 and per_process // a <= fits:
            return a
    return None


def device_bytes(device: torch.device) -> int | None:
    """Total memory of a CUDA device; None elsewhere."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.get_device_properties(device).total_memory)


def oom_advice(
    preset: str | Any,
    window_s: float,
    batch_size: int,
    world: int,
    accumulate: int,
    gpu_bytes: int | None,
    teacher: str | Any | None = None,
) -> tuple[int, int | None]:
    """(failed micro-batch, accumulate that would fit) after an out-of-memory error.

    The fit is projected from the measured per-window memory when the GPU's size is known,
    and never allowed above half the micro-batch that just failed."""
    micro = batch_size // (world * accumulate)
    fits = max(micro // 2, 0)
    if gpu_bytes:
        measured = micro_batch_that_fits(
            per_window_bytes(preset, window_s), state_bytes(preset, teacher), gpu_bytes
        )
        fits = min(fits, measured)
    return micro, accumulate_that_fits(batch_size, world, accumulate + 1, fits) if fits else None


def table(presets: list[str], window_s: float, micro_batch: int) -> list[dict[str, Any]]:
    """Per preset: measured activation MiB per window, the fixed state, what a micro-batch
    of ``micro_batch`` windows needs, and the projected largest micro-batch per GPU class."""
    rows = []
    for preset in presets:
        per_window, fixed = per_window_bytes(preset, window_s), state_bytes(preset)
        row = {
            "preset": preset,
            "parameters": models.count_params(models.build(preset)),
            "activations MiB per window (measured, CPU fp32)": round(per_window / 2**20, 1),
            "weights+grads+AdamW MiB": round(fixed / 2**20, 1),
            f"micro-batch {micro_batch} GiB (projection)": round(
                (fixed + micro_batch * per_window) / GIB, 2
            ),
        }
        for gb in GPU_CLASSES_GB:
            fits = micro_batch_that_fits(per_window, fixed, gb * 1e9)
            row[f"max micro-batch {gb} GB (projection)"] = fits
        rows.append(row)
    return rows


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "memory",
        help="training memory per preset: measured per window on CPU, projected per GPU",
    )
    p.add_argument("--presets", nargs="+", default=["tiny", "small", "large", "tds"])
    p.add_argument("--window-s", type=float, default=5.0, help="window + context, seconds")
    p.add_argument("--micro-batch", type=int, default=8, help="windows per micro-batch")
    p.set_defaults(func=_memory_cli)


def _memory_cli(args: argparse.Namespace) -> int:
    import pandas as pd

    if not (args.window_s > 0 and math.isfinite(args.window_s)):
        raise ValueError(f"--window-s {args.window_s}: must be a positive number of seconds")
    if args.micro_batch < 1:
        raise ValueError(f"--micro-batch {args.micro_batch}: must be at least 1")
    rows = table(args.presets, args.window_s, args.micro_batch)
    print(pd.DataFrame(rows).to_markdown(index=False))
    return 0
