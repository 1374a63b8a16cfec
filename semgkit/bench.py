"""Speed figures per preset, next to this machine's measured matrix-multiply peak.

For each preset: parameters, GFLOPs per second of sEMG, offline throughput, streaming
latency per chunk (p50/p99), real-time factors, inference working memory, training
throughput, onnxruntime latency beside PyTorch's, and the fraction of the matmul peak
the model achieves. Every figure is measured here at a fixed thread count; the CSV and
Markdown files record the machine, CPU, thread count and library versions beside them.
Measurements stop early on big models (a per-measurement time budget) so a default run
stays within minutes.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from semgkit.edge import projection
from semgkit.format import BANDS, ELECTRODES, SAMPLE_RATE
from semgkit.provenance import cpu_model, write_csv_md

WINDOW_S = 5.0  # the sliding window (stream.WINDOW_SAMPLES) rerun every hop

DEFAULT_PRESETS = (
    "lap-xxs",
    "lap-xs",
    "lap-s",
    "lap-m",
    "lap-l",
    "lap-student",
    "tiny",
    "small",
    "large",
    "tiny-causal",
    "small-causal",
    "tds",
)


@dataclass
class BenchConfig:
    presets: tuple[str, ...] = DEFAULT_PRESETS
    threads: int = 1
    chunk_ms: float = 40.0  # streaming step
    offline_seconds: float = 4.0  # signal length for offline / ONNX timings
    iterations: int = 100  # streaming steps measured (fewer when the time budget runs out)
    budget_s: float = 3.0  # wall-clock cap per measurement, so `large` stays short
    train_batch: int = 8
    train_window_s: float = 1.0
    onnx: bool = True
    memory: bool = True


# ---------------------------------------------------------------- machine and timing


def machine_info(threads: int) -> dict[str, str | int]:
    """Where the numbers were measured: recorded beside every row."""
    import onnxruntime

    return {
        "machine": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "threads": threads,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def matmul_peak_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Best float32 GEMM rate (GFLOP/s) at the current thread count: the roof we compare to."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up the BLAS
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def time_calls(
    fn: Callable[[], object], iterations: int, warmup: int = 3, budget_s: float = math.inf
) -> np.ndarray:
    """Wall seconds of ``iterations`` calls after ``warmup``; stops early past ``budget_s``
    (always keeping at least two timings)."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 2 and time.perf_counter() - start > budget_s:
            break
    return np.asarray(times)


def latency_ms(times: np.ndarray) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds."""
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "mean_ms": float(times.mean() * 1e3),
    }


# ---------------------------------------------------------------- per-preset figures

_MEMORY_PROBE = """
import torch
from semgkit.models import build
torch.set_num_threads({threads})
model = build({preset!r}).eval()
x = torch.randn(1, {samples}, 2, 16)


def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak resident set size (VmHWM) to the current one
before = status("VmRSS:")
with torch.no_grad():
    model(x)
print((status("VmHWM:") - before) / 1024)
"""


def inference_memory_mb(preset: str, samples: int, threads: int) -> float:
    """Peak resident memory added by one offline forward pass over the loaded model, in a
    fresh process (Linux: the peak is reset through /proc/self/clear_refs first, so the
    import-time peak does not hide a small model's activations)."""
    code = _MEMORY_PROBE.format(preset=preset, samples=samples, threads=threads)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe for {preset!r} failed:\n{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def training_windows_per_s(model: torch.nn.Module, cfg: BenchConfig) -> float:
    """Forward + CTC loss + backward + AdamW step on a batch of random windows (the
    training engine's objective, :func:`semgkit.train.ctc_objective`)."""
    from semgkit.charset import CHARSET
    from semgkit.train import ctc_objective

    samples = int(cfg.train_window_s * SAMPLE_RATE)
    batch = {
        "emg": torch.randn(cfg.train_batch, samples, len(BANDS), ELECTRODES),
        "input_lengths": torch.full((cfg.train_batch,), samples, dtype=torch.long),
        "targets": torch.randint(0, CHARSET.blank, (cfg.train_batch, 4)),
        "target_lengths": torch.full((cfg.train_batch,), 4, dtype=torch.long),
    }
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss, _ = ctc_objective(model, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = time_calls(step, iterations=5, warmup=1, budget_s=cfg.budget_s)
    model.eval()
    return cfg.train_batch / float(np.median(times))


def streaming_latency(
    model: torch.nn.Module, cfg: BenchConfig, sliding: bool = False
) -> dict[str, float]:
    """Per-chunk latency of `semgkit.stream.Streamer` in steady state (KV caches full), or
    with ``sliding`` of `SlidingWindowStreamer` (hop = chunk, a full window buffered)."""
    from semgkit.stream import WINDOW_SAMPLES, SlidingWindowStreamer, Streamer

    chunk = int(round(cfg.chunk_ms * SAMPLE_RATE / 1000))
    if sliding:  # start with a full window buffered (as past emitted hops would leave it)
        streamer = SlidingWindowStreamer(model, hop_samples=chunk)
        streamer.buffer = torch.randn(WINDOW_SAMPLES - chunk, len(BANDS), ELECTRODES)
        streamer.emitted_to = len(streamer.buffer)
        warm_chunks = 3
    else:
        streamer = Streamer(model, chunk_samples=chunk)
        warm_chunks = max(8, streamer.warmup_chunks())
    signal = torch.randn(warm_chunks + cfg.iterations, chunk, len(BANDS), ELECTRODES)
    chunks = iter(signal)
    with torch.inference_mode():
        times = time_calls(
            lambda: streamer.step(next(chunks)),
            cfg.iterations,
            warmup=warm_chunks,
            budget_s=cfg.budget_s,
        )
    stats = latency_ms(times)
    return {
        "stream_p50_ms": stats["p50_ms"],
        "stream_p99_ms": stats["p99_ms"],
        "stream_rtf": stats["mean_ms"] / cfg.chunk_ms,
        "stream_steps": len(times),
        "stream_mode": "sliding window (5 s)" if sliding else "incremental",
    }


def bench_preset(name: str, cfg: BenchConfig, peak_gflops: float) -> dict[str, object]:
    """All figures for one preset; a figure that cannot be measured is NaN with a note."""
    from semgkit.models import build, count_params, flops_per_second

    torch.manual_seed(0)
    model = build(name).eval()
    gflops = flops_per_second(name) / 1e9
    samples = int(cfg.offline_seconds * SAMPLE_RATE) // model.hop * model.hop
    seconds = samples / SAMPLE_RATE
    x = torch.randn(1, samples, len(BANDS), ELECTRODES)
    row: dict[str, object] = {
        "preset": name,
        "params": count_params(model),
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "gflops_per_s_emg": gflops,
    }
    notes = []

    with torch.inference_mode():
        times = time_calls(lambda: model(x), iterations=10, warmup=1, budget_s=cfg.budget_s)
    offline = float(np.median(times))
    row |= {
        "offline_ms": offline * 1e3,
        "offline_throughput": seconds / offline,  # seconds of sEMG per wall second
        "offline_rtf": offline / seconds,
        "offline_peak_fraction": gflops * seconds / offline / peak_gflops,
    }
    try:
        row |= streaming_latency(model, cfg)
        row["stream_peak_fraction"] = (
            gflops * (cfg.chunk_ms / 1000) / (row["stream_p50_ms"] / 1e3) / peak_gflops
        )
    except ValueError as err:  # not causal (GroupNorm over the window): rerun it every hop
        if "not causal" in str(err):
            row |= streaming_latency(model, cfg, sliding=True)
        else:  # e.g. unbounded attention
            notes.append(f"no streaming: {err}")
    # operations per second of sEMG as streamed: a sliding window reruns a window per hop
    mode = row.get("stream_mode", "")
    rerun = WINDOW_S / (cfg.chunk_ms / 1000) if str(mode).startswith("sliding") else 1.0
    row["stream_gflops_per_s_emg"] = gflops * rerun
    row |= projection(gflops * rerun * 1e9, cfg.chunk_ms / 1000)
    if cfg.onnx:
        row |= onnx_latency(model, x, cfg)
        if mode == "incremental":
            row |= onnx_stream_latency(model, cfg)
    if cfg.memory:
        row["inference_mem_mb"] = inference_memory_mb(name, samples, cfg.threads)
    row["train_windows_per_s"] = training_windows_per_s(model, cfg)
    row["note"] = "; ".join(notes)
    return row


def onnx_latency(model: torch.nn.Module, x: torch.Tensor, cfg: BenchConfig) -> dict[str, float]:
    """onnxruntime's offline latency on the same signal, and its max deviation from torch."""
    from semgkit.export import export_onnx, max_abs_difference, ort_session

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", example=x)
        session = ort_session(path, threads=cfg.threads)
        feed = {"emg": x.numpy()}
        times = time_calls(
            lambda: session.run(None, feed), iterations=10, warmup=1, budget_s=cfg.budget_s
        )
        diff = max_abs_difference(model, path, x)
    return {"onnx_ms": float(np.median(times) * 1e3), "onnx_max_abs_diff": diff}


def onnx_stream_latency(model: torch.nn.Module, cfg: BenchConfig) -> dict[str, float]:
    """The exported streaming step (`semgkit.export_step`) in onnxruntime, float32 and int8
    (dynamic quantisation): p50 / p99 per chunk and the model files' sizes."""
    from semgkit.export_step import export_step, quantize_int8

    chunk = int(round(cfg.chunk_ms * SAMPLE_RATE / 1000)) // model.hop * model.hop
    row: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_step(model, Path(tmp) / "step.onnx", chunk_samples=chunk)
        for label, path in (("fp32", fp32), ("int8", quantize_int8(fp32, Path(tmp) / "q.onnx"))):
            stats = _ort_step_latency(path, chunk, cfg)
            row[f"ort_stream_{label}_p50_ms"] = stats["p50_ms"]
            row[f"ort_stream_{label}_p99_ms"] = stats["p99_ms"]
            row[f"ort_stream_{label}_bytes"] = path.stat().st_size
    return row


def _ort_step_latency(path: Path, chunk: int, cfg: BenchConfig) -> dict[str, float]:
    from semgkit.export_step import OnnxStream

    runner = OnnxStream(path, threads=cfg.threads)
    shape = (cfg.iterations + 8, chunk, len(BANDS), ELECTRODES)
    signal = iter(np.random.default_rng(0).standard_normal(shape, np.float32))
    times = time_calls(
        lambda: runner.step(next(signal)), cfg.iterations, warmup=8, budget_s=cfg.budget_s
    )
    return latency_ms(times)


def run_bench(cfg: BenchConfig, out: str | Path | None = None) -> pd.DataFrame:
    """Benchmark every preset in ``cfg``; with ``out`` write ``out`` (.csv) and its .md."""
    torch.set_num_threads(cfg.threads)
    info = machine_info(cfg.threads)
    peak = matmul_peak_gflops()
    rows = [
        bench_preset(name, cfg, peak) for name in tqdm(cfg.presets, desc="bench", unit="preset")
    ]
    df = pd.DataFrame(rows)
    df["matmul_peak_gflops"] = peak
    if out is not None:
        write_bench(df, out, info, cfg)
    return df


def write_bench(df: pd.DataFrame, out: str | Path, info: dict, cfg: BenchConfig) -> Path:
    """CSV (machine info as columns on every row) + Markdown (machine info as a header)."""
    out = Path(out)
    if out.suffix != ".csv":
        raise ValueError(f"--out {out}: expected a file name ending in .csv")
    settings = {k: v for k, v in asdict(cfg).items() if k != "presets"}
    notes = "\n".join(f"- {k}: {v}" for k, v in settings.items())
    return write_csv_md(df, out, info, "semgkit bench", notes, floatfmt=".4g")


def _cli(args: argparse.Namespace) -> int:
    if args.threads < 1:
        raise ValueError(f"--threads {args.threads}: must be >= 1")
    if args.iterations < 1:
        raise ValueError(f"--iterations {args.iterations}: must be >= 1")
    cfg = BenchConfig(
        presets=tuple(args.presets),
        threads=args.threads,
        iterations=args.iterations,
        onnx=not args.no_onnx,
        memory=not args.no_memory,
    )
    df = run_bench(cfg, args.out)
    print(df.to_markdown(index=False, floatfmt=".4g"))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="speed figures per preset (CSV + Markdown)")
    p.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), help="model presets")
    p.add_argument("--out", type=Path, default=Path("build/results/bench.csv"), help="FILE.csv")
    p.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads")
    p.add_argument("--iterations", type=int, default=100, help="streaming steps to time")
    p.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime timings")
    p.add_argument("--no-memory", action="store_true", help="skip the memory probe")
    p.set_defaults(func=_cli)
