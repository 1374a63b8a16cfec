"""The streaming step in ONNX: explicit state in, next state out, run in onnxruntime.

`export_step` traces a model's step module (`semgkit.stream_step`) for a fixed chunk of
``chunk_samples`` (a whole number of hops): inputs ``chunk`` (chunk_samples, 2, 16) and
``state_0 .. state_N``, outputs ``log_probs`` (frames, classes) and ``next_state_0 ..``.
The caller feeds each step's next state back (`OnnxStream`); zeros start a stream.
`quantize_int8` (onnxruntime's dynamic quantisation: int8 weights, activations quantised
per call) and `to_fp16` (onnxruntime's float16 converter, float32 inputs and outputs kept)
derive smaller models from the exported file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semgkit.atomic import atomic_write, publish
from semgkit.export import ort_session, write_onnx
from semgkit.format import SAMPLE_RATE
from semgkit.stream_step import IncrementalStream, step_module

ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(bool)": np.bool_}


def export_step(model: nn.Module, out: str | Path, chunk_samples: int = 80) -> Path:
    """Write ``model``'s streaming step for chunks of ``chunk_samples`` to ONNX at ``out``."""
    step = step_module(model.eval())
    if step is None:
        raise ValueError(
            f"model {type(model).__name__} has no incremental step (not causal, or GroupNorm "
            "over the window); stream it in sliding-window mode (its offline export serves that)"
        )
    if chunk_samples < step.hop or chunk_samples % step.hop:
        raise ValueError(
            f"chunk_samples={chunk_samples}: must be a positive multiple of the model hop {step.hop}"
        )
    state = step.initial_state()
    chunk = torch.zeros(chunk_samples, 2, 16)
    inputs = ["chunk", *[f"state_{i}" for i in range(len(state))]]
    outputs = ["log_probs", *[f"next_state_{i}" for i in range(len(state))]]
    return write_onnx(step, (chunk, *state), out, inputs, outputs)


class OnnxStream:
    """An exported step in an onnxruntime session (`export.ort_session`: ``threads`` intra-op
    threads, all graph optimisations), its state carried from call to call."""

    def __init__(self, path: str | Path, threads: int = 1) -> None:
        self.session = ort_session(path, threads)
        self.inputs = self.session.get_inputs()
        self.chunk_samples = int(self.inputs[0].shape[0])
        self.reset()

    def reset(self) -> None:
        self.state = [np.zeros(i.shape, ORT_TYPES[i.type]) for i in self.inputs[1:]]

    def step(self, chunk: np.ndarray) -> np.ndarray:
        """(chunk_samples, 2, 16) float32 -> (frames, classes)."""
        if tuple(chunk.shape) != (self.chunk_samples, 2, 16):
            raise ValueError(
                f"chunk shaped {tuple(chunk.shape)}: this step takes ({self.chunk_samples}, 2, 16)"
            )
        feed = {"chunk": chunk.astype(np.float32, copy=False)}
        feed |= {i.name: s for i, s in zip(self.inputs[1:], self.state, strict=True)}
        out, *self.state = self.session.run(None, feed)
        return out


def quantize_int8(path: str | Path, out: str | Path) -> Path:
    """onnxruntime's dynamic int8 quantisation of the matrix products (weights int8, each
    call's activations quantised on the fly); convolutions stay float32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = _onnx_name(out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp:
        quantized = Path(tmp) / "model.onnx"
        quantize_dynamic(
            str(path),
            str(quantized),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
        publish(quantized, out)
    return out


def to_fp16(path: str | Path, out: str | Path) -> Path:
    """Weights and arithmetic in float16 (onnxruntime's converter), float32 at the edges."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    out = _onnx_name(out)
    atomic_write(out, model.SerializeToString())
    return out


def _onnx_name(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"--out {out}: expected a file name ending in .onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


class OnnxModel(nn.Module):
    """An exported offline model (`export.export_onnx`, or its int8 / fp16 derivative)
    behind the PyTorch model interface, so `semgkit.evaluate` scores it like the original:
    ``forward(emg, lengths)`` runs onnxruntime on CPU; ``output_lengths`` is the model's."""

    def __init__(self, path: str | Path, like: nn.Module, threads: int = 1) -> None:
        super().__init__()
        self.session = ort_session(path, threads)
        self.hop, self.config = like.hop, getattr(like, "config", None)
        self.output_lengths = like.output_lengths
        self.device_anchor = nn.Parameter(torch.zeros(0))  # evaluate() asks the device

    def forward(self, emg: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        feed = {"emg": emg.detach().cpu().numpy().astype(np.float32, copy=False)}
        return torch.from_numpy(self.session.run(None, feed)[0])


def step_cli(model: nn.Module, out: Path, step_ms: float, tolerance: float) -> int:
    """`semgkit export --step-ms MS`: the step, its int8 and fp16 files, checked over 50 chunks."""
    chunk = int(round(step_ms * SAMPLE_RATE / 1000))
    path = export_step(model, out, chunk)
    stem = path.with_suffix("")
    derived = [quantize_int8(path, f"{stem}.int8.onnx"), to_fp16(path, f"{stem}.fp16.onnx")]
    reference = IncrementalStream(
        step_module(model), OnnxStream(path).session.get_outputs()[0].shape[-1]
    )
    onnx_stream = OnnxStream(path)
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    for _ in range(50):
        chunk_emg = torch.randn(chunk, 2, 16, generator=gen)
        expected = reference.step(chunk_emg).numpy()
        worst = max(worst, float(np.abs(onnx_stream.step(chunk_emg.numpy()) - expected).max()))
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.2f} MB" for p in [path, *derived])
    print(f"wrote {sizes}; max |onnx step - torch step| over 50 chunks = {worst:.2e}")
    if worst > tolerance:
        print(f"error: the ONNX step differs from PyTorch's by {worst:.2e} > {tolerance}")
        return 1
    return 0
