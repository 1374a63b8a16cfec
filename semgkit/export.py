"""ONNX export of any preset or trained run, checked against PyTorch with onnxruntime.

The graph takes raw sEMG ``emg`` (batch, samples, 2, 16) with dynamic batch and time
axes and returns per-frame log-probabilities ``log_probs`` (batch, frames, 99), the same
contract as the PyTorch model, so a deployment can feed it any signal length.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semgkit.atomic import atomic_path
from semgkit.format import BANDS, ELECTRODES, SAMPLE_RATE
from semgkit.runs import load_run

OPSET = 17


def _example(model: nn.Module, seconds: float = 1.0, batch: int = 1) -> torch.Tensor:
    hop = int(getattr(model, "hop", 1))
    samples = max(hop * 8, int(round(seconds * SAMPLE_RATE)) // hop * hop)
    return torch.randn(
        batch, samples, len(BANDS), ELECTRODES, generator=torch.Generator().manual_seed(0)
    )


def export_onnx(model: nn.Module, out: str | Path, example: torch.Tensor | None = None) -> Path:
    """Trace ``model`` (eval mode) to ONNX at ``out``; written to a temp name, then renamed."""
    model = model.eval()
    example = _example(model) if example is None else example
    dynamic = {"emg": {0: "batch", 1: "samples"}, "log_probs": {0: "batch", 1: "frames"}}
    return write_onnx(model, (example,), out, ["emg"], ["log_probs"], dynamic)


def write_onnx(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    out: str | Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict | None = None,
) -> Path:
    """Trace ``module`` on ``args`` to ONNX at ``out`` (atomically: a temp name, renamed)."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"--out {out}: expected a file name ending in .onnx")
    with atomic_path(out, suffix=".onnx") as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer chatter about constant folding
            torch.onnx.export(
                module,
                args,
                tmp,
                dynamo=False,  # the TorchScript exporter needs no onnxscript
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=dynamic_axes or {},
                opset_version=OPSET,
            )
    return out


def ort_session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session: ``threads`` intra-op threads, one inter-op thread,
    sequential execution and every graph optimisation (ORT_ENABLE_ALL)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_abs_difference(model: nn.Module, path: str | Path, emg: torch.Tensor) -> float:
    """Largest |onnxruntime - PyTorch| over the log-probabilities for input ``emg``."""
    with torch.no_grad():
        expected = model.eval()(emg).numpy()
    got = ort_session(path).run(None, {"emg": emg.numpy().astype(np.float32)})[0]
    if got.shape != expected.shape:
        raise ValueError(f"{path}: ONNX output shape {got.shape} != PyTorch {expected.shape}")
    return float(np.abs(got - expected).max())


def _load(args: argparse.Namespace) -> nn.Module:
    if args.run:
        return load_run(args.run)[0]
    from semgkit.models import build

    return build(args.preset)


def _cli(args: argparse.Namespace) -> int:
    model = _load(args).eval()
    if args.step_ms is not None:
        from semgkit.export_step import step_cli

        return step_cli(model, args.out, args.step_ms, args.tolerance)
    start = time.perf_counter()
    path = export_onnx(model, args.out)
    # check on a different length and batch than the trace, so dynamic axes are exercised
    diff = max_abs_difference(model, path, _example(model, seconds=1.7, batch=2))
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s; max |onnx - torch| = {diff:.2e}")
    if diff > args.tolerance:
        print(f"error: ONNX output differs from PyTorch by {diff:.2e} > {args.tolerance}")
        return 1
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a preset or trained run to ONNX")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="trained run directory")
    src.add_argument("--preset", help="model preset name (untrained weights)")
    p.add_argument("--out", type=Path, required=True, help="output FILE.onnx")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max allowed |onnx - torch|")
    p.add_argument(
        "--step-ms",
        type=float,
        default=None,
        help="export the incremental streaming step for chunks of this many ms (explicit state "
        "inputs/outputs), with OUT.int8.onnx and OUT.fp16.onnx beside it",
    )
    p.set_defaults(func=_cli)
