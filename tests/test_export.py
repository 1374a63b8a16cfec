"""ONNX export round trip: onnxruntime gives PyTorch's log-probabilities."""

import pytest
import torch
from test_stream import CausalToy

from semgkit.export import export_onnx, max_abs_difference


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
