"""One trained model across runtimes: PyTorch float32 and onnxruntime float32, int8, float16.

For each runtime: the latency of one streaming step per chunk (p50 / p99, one thread), the
model file's size, the largest deviation from PyTorch's outputs over 50 chunks, and the
CER on the test part of a split, so a reader sees what quantisation costs in accuracy beside
what it buys in speed. A model with a step module (`semgkit.stream_step`) is timed per
incremental step; one that normalises over the window per sliding-window hop (one 5 s
window's forward). The CER goes through the offline graph, which holds the same weights
and quantised operators as the step.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from semgkit.bench import latency_ms, time_calls
from semgkit.evaluate import evaluate
from semgkit.export import export_onnx
from semgkit.export_step import OnnxModel, OnnxStream, export_step, quantize_int8, to_fp16
from semgkit.format import SAMPLE_RATE
from semgkit.runs import TrainConfig
from semgkit.stream import WINDOW_SAMPLES
from semgkit.stream_step import IncrementalStream, step_module


def _derived(fp32: Path) -> dict[str, Path]:
    stem = fp32.with_suffix("")
    return {
        "fp32": fp32,
        "int8": quantize_int8(fp32, f"{stem}.int8.onnx"),
        "fp16": to_fp16(fp32, f"{stem}.fp16.onnx"),
    }


def runtime_comparison(
    model: nn.Module,
    config: TrainConfig,
    data_dir: str | Path,
    chunk_ms: float = 40.0,
    iterations: int = 100,
    split: str = "generic",
    threads: int = 1,
    compared_chunks: int = 50,
) -> pd.DataFrame:
    """One row per runtime: step_p50_ms, step_p99_ms, file_bytes, max_abs_diff_vs_torch
    (over the first ``compared_chunks`` steps), test_CER and CER_change_vs_torch (test CER
    minus PyTorch's)."""
    model = model.eval()
    torch.set_num_threads(threads)
    chunk = int(round(chunk_ms * SAMPLE_RATE / 1000)) // model.hop * model.hop
    step = step_module(model)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        offline = _derived(export_onnx(model, Path(tmp) / "offline.onnx"))
        if step is not None:
            files = _derived(export_step(model, Path(tmp) / "step.onnx", chunk))
            shape = (max(iterations + 8, compared_chunks), chunk, 2, 16)
            inputs = rng.standard_normal(shape, np.float32)
            makers = {"PyTorch fp32": lambda: _torch_step(step, model)}
            for k, p in files.items():
                makers[f"onnxruntime {k}"] = lambda p=p: OnnxStream(p, threads).step
        else:  # sliding window: every hop reruns the model on the last 5 s
            files = offline
            shape = (max(iterations + 8, compared_chunks), 1, WINDOW_SAMPLES, 2, 16)
            inputs = rng.standard_normal(shape, np.float32)
            makers = {"PyTorch fp32": lambda: _forward(model)}
            for k, p in files.items():
                makers[f"onnxruntime {k}"] = lambda p=p: _forward(OnnxModel(p, model, threads))
        compared = inputs[:compared_chunks]
        reference = list(map(makers["PyTorch fp32"](), compared))
        rows = []
        for name, make in makers.items():
            label, run = name.split()[-1], make()  # a fresh stream, as the reference's
            pairs = zip(compared, reference, strict=True)
            worst = max(float(np.abs(run(c) - r).max()) for c, r in pairs)
            stats = latency_ms(_timed(make(), inputs, iterations))
            torch_row = name.startswith("PyTorch")
            scored = model if torch_row else OnnxModel(offline[label], model, threads)
            cer = evaluate(scored, data_dir, split, "test", config=config).overall["CER"]
            size = sum(p.numel() * p.element_size() for p in model.parameters())
            rows.append(
                {
                    "runtime": name,
                    "step_p50_ms": stats["p50_ms"],
                    "step_p99_ms": stats["p99_ms"],
                    "file_bytes": size if torch_row else files[label].stat().st_size,
                    "max_abs_diff_vs_torch": worst,
                    "test_CER": cer,
                }
            )
    table = pd.DataFrame(rows)
    table["CER_change_vs_torch"] = table["test_CER"] - table["test_CER"].iloc[0]
    table["mode"] = "incremental step" if step is not None else "sliding window (5 s) per hop"
    return table


def _timed(run, inputs: np.ndarray, iterations: int) -> np.ndarray:
    feed = iter(inputs)
    return time_calls(lambda: run(next(feed)), iterations, warmup=8)


def _torch_step(step: nn.Module, model: nn.Module):
    runner = IncrementalStream(step, model.config.num_classes)
    return lambda c: runner.step(torch.from_numpy(c)).numpy()


def _forward(model: nn.Module):
    def run(window: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(window)).numpy()

    return run
