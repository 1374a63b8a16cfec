"""Bench plumbing: timing statistics, the matmul roof, a well-formed CSV from the CLI."""

import numpy as np
import pandas as pd
import pytest

from semgkit.bench import BenchConfig, latency_ms, matmul_peak_gflops, time_calls, write_bench


def test_latency_percentiles():
    stats = latency_ms(np.arange(1, 101) / 1000)  # 1..100 ms
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["mean_ms"] == pytest.approx(50.5)


def test_time_calls_counts_and_budget():
    calls = []
    times = time_calls(lambda: calls.append(1), iterations=7, warmup=2)
    assert len(times) == 7 and len(calls) == 9
    assert len(time_calls(lambda: None, iterations=1000, warmup=0, budget_s=0.0)) == 2


def test_matmul_peak_is_positive():
    assert matmul_peak_gflops(n=128, repeats=2) > 0


def test_write_bench_needs_csv(tmp_path):
    with pytest.raises(ValueError, match="csv"):
        write_bench(pd.DataFrame({"preset": ["x"]}), tmp_path / "b.txt", {}, BenchConfig())


def test_bench_cli_writes_csv(tmp_path):
    pytest.importorskip("semgkit.models")
    from semgkit.cli import main

    out = tmp_path / "bench.csv"
    args = ["bench", "--presets", "lap-student", "--out", str(out), "--iterations", "5"]
    assert main(args) == 0
    df = pd.read_csv(out)
    assert list(df["preset"]) == ["lap-student"]
    for column in (
        "params",
        "gflops_per_s_emg",
        "offline_throughput",
        "stream_p50_ms",
        "stream_p99_ms",
        "stream_rtf",
        "inference_mem_mb",
        "train_windows_per_s",
        "onnx_ms",
        "matmul_peak_gflops",
        "offline_peak_fraction",
        "threads",
        "cpu",
    ):
        assert column in df.columns, column
    assert df.loc[0, "params"] > 0 and df.loc[0, "offline_throughput"] > 0
    assert df.loc[0, "onnx_max_abs_diff"] < 1e-4
    # the incremental step in onnxruntime, float32 and int8, and the labelled projections
    for column in (
        "ort_stream_fp32_p99_ms",
        "ort_stream_int8_p99_ms",
        "ort_stream_int8_bytes",
        "param_bytes",
        "stream_gflops_per_s_emg",
        "proj_gap9_mj_per_s",
        "proj_edgetpu_chunk_ms",
    ):
        assert df.loc[0, column] > 0, column
    assert df.loc[0, "stream_gflops_per_s_emg"] == df.loc[0, "gflops_per_s_emg"]
    assert out.with_suffix(".md").read_text().startswith("# semgkit bench")


def test_cached_bench_measures_once_per_settings(tmp_path, monkeypatch):
    from semgkit import bench
    from semgkit.repro import cache

    calls = []

    def fake_run(cfg, out=None):
        calls.append(cfg)
        return pd.DataFrame([{"preset": p, "stream_p99_ms": 1.0} for p in cfg.presets])

    monkeypatch.setattr(bench, "run_bench", fake_run)
    cfg = bench.BenchConfig(presets=("lap-student",), iterations=5)
    first, cached = cache.cached_bench(cfg, tmp_path)
    assert not cached and len(calls) == 1
    again, cached = cache.cached_bench(cfg, tmp_path)
    assert cached and len(calls) == 1
    pd.testing.assert_frame_equal(first, again)
    _, cached = cache.cached_bench(
        bench.BenchConfig(presets=("lap-student",), iterations=6), tmp_path
    )
    assert not cached and len(calls) == 2


def test_bench_streams_paper_presets_in_sliding_window_mode(tmp_path):
    """tiny normalises over the window (GroupNorm): its streaming figures are the sliding
    window's (one 5 s window forward per 40 ms hop), labelled so."""
    from semgkit.cli import main

    out = tmp_path / "bench.csv"
    args = [
        "bench",
        "--presets",
        "tiny",
        "--out",
        str(out),
        "--iterations",
        "2",
        "--no-onnx",
        "--no-memory",
    ]
    assert main(args) == 0
    row = pd.read_csv(out).iloc[0]
    assert row["stream_mode"] == "sliding window (5 s)"
    assert row["stream_p99_ms"] >= row["stream_p50_ms"] > 0


def test_edge_projection_is_flops_times_published_energy():
    from semgkit.edge import EDGE_PROCESSORS, UTILISATION, projection

    row = projection(1e9, chunk_s=0.04)  # one GFLOP per second of sEMG
    gap9, tpu = EDGE_PROCESSORS
    assert row["proj_gap9_mj_per_s"] == pytest.approx(0.33)  # 330 uW/GOP
    assert row["proj_edgetpu_mj_per_s"] == pytest.approx(0.5)  # 2 TOPS/W
    assert row["proj_gap9_chunk_ms"] == pytest.approx(
        0.04e9 / (gap9.peak_ops_per_s * UTILISATION) * 1e3
    )
    assert all(p.source for p in EDGE_PROCESSORS)
