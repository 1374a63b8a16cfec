"""ONNX export round trip: onnxruntime gives PyTorch's log-probabilities."""

import numpy as np
import pytest
import torch
from test_stream import CausalToy

from semgkit.export import export_onnx, max_abs_difference
from semgkit.export_step import OnnxStream, export_step, quantize_int8, to_fp16
from semgkit.models import build
from semgkit.stream_step import IncrementalStream, step_module


def test_onnx_round_trip_toy(tmp_path):
    torch.manual_seed(0)
    model = CausalToy().eval()
    path = export_onnx(model, tmp_path / "toy.onnx", example=torch.randn(1, 800, 2, 16))
    assert path.is_file() and not list(tmp_path.glob(".*"))  # no temp file left behind
    # another batch size and length than the trace: the axes are dynamic
    assert max_abs_difference(model, path, torch.randn(3, 1208, 2, 16)) < 1e-4


def test_export_rejects_bad_suffix(tmp_path):
    with pytest.raises(ValueError, match="onnx"):
        export_onnx(CausalToy(), tmp_path / "model.pt")


def test_export_cli_preset(tmp_path):
    pytest.importorskip("semgkit.models")
    from semgkit.cli import main

    out = tmp_path / "student.onnx"
    assert main(["export", "--preset", "lap-student", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def ort_quiet():
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)  # the fp16 graph's constant-folding notes


@pytest.mark.parametrize("preset", ["lap-student", "tds-laptop"])
def test_onnx_streaming_step_equals_pytorch_over_50_chunks(preset, tmp_path, ort_quiet):
    """State in, next state out: onnxruntime's stream equals PyTorch's step by step."""
    torch.manual_seed(0)
    model = build(preset).eval()
    path = export_step(model, tmp_path / "step.onnx", chunk_samples=80)
    onnx_stream = OnnxStream(path)
    torch_stream = IncrementalStream(step_module(model), 99)
    emg = torch.randn(50 * 80, 2, 16)
    for i in range(0, len(emg), 80):
        expected = torch_stream.step(emg[i : i + 80]).numpy()
        got = onnx_stream.step(emg[i : i + 80].numpy())
        assert got.shape == expected.shape == (80 // model.hop, 99)
        assert np.abs(got - expected).max() < 1e-4
    onnx_stream.reset()
    assert (
        np.abs(
            onnx_stream.step(emg[:80].numpy())
            - torch_stream.module(emg[:80], *torch_stream.module.initial_state())[0]
            .detach()
            .numpy()
        ).max()
        < 1e-4
    )


def test_quantised_steps_load_and_run(tmp_path, ort_quiet):
    torch.manual_seed(0)
    model = build("lap-student").eval()
    path = export_step(model, tmp_path / "step.onnx")
    reference = OnnxStream(path)
    emg = torch.randn(10 * 80, 2, 16).numpy()
    expected = np.concatenate([reference.step(emg[i : i + 80]) for i in range(0, 800, 80)])
    for derived in (
        quantize_int8(path, tmp_path / "int8.onnx"),
        to_fp16(path, tmp_path / "fp16.onnx"),
    ):
        stream = OnnxStream(derived)
        got = np.concatenate([stream.step(emg[i : i + 80]) for i in range(0, 800, 80)])
        assert got.shape == expected.shape and np.isfinite(got).all()
        # log-probabilities: each frame still sums to one in probability
        assert np.allclose(np.exp(got).sum(-1), 1.0, atol=1e-2)
        assert derived.stat().st_size < path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fp16.onnx", "int8.onnx", "step.onnx"]


def test_export_step_refusals(tmp_path):
    with pytest.raises(ValueError, match="sliding-window mode"):
        export_step(build("tiny"), tmp_path / "tiny.onnx")
    with pytest.raises(ValueError, match="chunk_samples=30"):
        export_step(build("lap-student"), tmp_path / "s.onnx", chunk_samples=30)
    stream = OnnxStream(export_step(build("lap-student"), tmp_path / "s.onnx"))
    with pytest.raises(ValueError, match=r"takes \(80, 2, 16\)"):
        stream.step(np.zeros((40, 2, 16), np.float32))


def test_export_step_leaves_the_model_in_eval_mode(tmp_path):
    model = build("lap-student").eval()
    export_step(model, tmp_path / "s.onnx")
    assert not any(m.training for m in model.modules())


def test_export_cli_streaming_step(tmp_path, capsys, ort_quiet):
    from semgkit.cli import main

    out = tmp_path / "student.onnx"
    assert main(["export", "--preset", "lap-student", "--out", str(out), "--step-ms", "40"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "student.fp16.onnx",
        "student.int8.onnx",
        "student.onnx",
    ]
    assert "over 50 chunks" in capsys.readouterr().out
    assert OnnxStream(out).chunk_samples == 80
