"""One model across runtimes: every row measured, PyTorch's row the reference."""

import onnxruntime
import pytest

from semgkit import synth
from semgkit.deploy import runtime_comparison
from semgkit.models import build
from semgkit.runs import TrainConfig


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("corpus") / "smoke", "smoke", progress=False)


@pytest.mark.parametrize("preset", ["lap-student", "tiny"])
def test_runtime_comparison(preset, corpus):
    onnxruntime.set_default_logger_severity(3)
    model = build(preset).eval()
    config = TrainConfig(data_dir=str(corpus), window_s=1.0, past_s=0.2, future_s=0.0)
    compared = 50 if preset == "lap-student" else 2  # a 5 s window per hop for tiny
    table = runtime_comparison(model, config, corpus, iterations=3, compared_chunks=compared)
    assert table["runtime"].tolist() == [
        "PyTorch fp32",
        "onnxruntime fp32",
        "onnxruntime int8",
        "onnxruntime fp16",
    ]
    first = table.iloc[0]
    assert first["max_abs_diff_vs_torch"] == 0 and first["CER_change_vs_torch"] == 0
    # float32 in onnxruntime is the same model (to rounding), so it scores the same text
    assert table.iloc[1]["max_abs_diff_vs_torch"] < 1e-3
    assert table.iloc[1]["CER_change_vs_torch"] == 0
    assert (table["step_p99_ms"] >= table["step_p50_ms"]).all() and (table["file_bytes"] > 0).all()
    expected = "incremental step" if preset == "lap-student" else "sliding window (5 s) per hop"
    assert set(table["mode"]) == {expected}
