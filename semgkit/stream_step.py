"""The streaming step as a pure function of (chunk, state): constant work per chunk.

A step module takes a chunk of whole hops of sEMG, (hops * hop, 2, 16), and the state
tensors of the previous step, and returns the chunk's frames and the next state. The state
has a fixed shape (zeros at the start of a stream), so the same module runs in PyTorch
(`IncrementalStream`, behind `stream.Streamer`) and exports to ONNX with explicit state
inputs and outputs (`semgkit.export.export_step`).

- `TransformerStep`, for a causal `SEMGTransformer` whose featurizer normalises frame by
  frame (BatchNorm in eval mode, or the per-frame ``feat_norm="frame"``) with an attention
  window: each convolution keeps its last ``kernel - stride`` inputs (its left padding at
  the start), the positional convolution its last ``pos_kernel - 1`` frames, every block
  the keys and values of the last ``attn_window - 1`` frames and one mask says which of
  those frames exist yet.
- `TDSStep`, for a causal TDS-ConvNet: the spectrogram keeps its last ``n_fft - hop``
  samples, each temporal convolution block its last ``kernel_width - 1`` frames; the
  band MLPs, fully connected blocks and norms work frame by frame.

Both equal offline inference to float rounding (tests/test_stream_step.py: 1e-4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semgkit.models import SEMGTransformer
from semgkit.tds import TDSConv2dBlock, TDSConvNet

CHANNELS = 32


def _keep_last(x: Tensor, n: int) -> Tensor:
    """The last ``n`` columns along the last axis (none when n == 0)."""
    return x[..., x.shape[-1] - n :]


def supports_incremental(model: nn.Module) -> bool:
    """A causal TDS-ConvNet, or a causal windowed transformer with a per-frame featurizer norm."""
    if isinstance(model, TDSConvNet):
        return model.config.causal
    if not isinstance(model, SEMGTransformer):
        return False
    c, f = model.config, model.featurizer
    convs_exact = all(
        pad == conv.kernel_size[0] - conv.stride[0]
        for conv, pad in zip(f.convs, f.pads, strict=True)
    )
    per_frame = c.feat_norm in ("batch", "frame")
    return c.causal and per_frame and c.attn_window is not None and convs_exact


class TransformerStep(nn.Module):
    """One streaming step of a causal, windowed `SEMGTransformer` with a per-frame norm."""

    def __init__(self, model: SEMGTransformer) -> None:
        super().__init__()
        c = model.config
        if not supports_incremental(model):
            raise ValueError(
                f"incremental streaming needs a causal transformer with a per-frame featurizer "
                f"norm and an attention window (got causal={c.causal}, feat_norm={c.feat_norm!r}, "
                f"attn_window={c.attn_window}); stream it in sliding-window mode instead"
            )
        self.model = model
        self.hop = model.hop
        self.window = int(c.attn_window)
        self.eval()  # the wrapper too: exporters restore its mode, and so the model's

    def initial_state(self) -> list[Tensor]:
        m, c = self.model, self.model.config
        past = self.window - 1
        convs = [
            torch.zeros(v.in_channels, pad)
            for v, pad in zip(m.featurizer.convs, m.featurizer.pads, strict=True)
        ]
        kv = torch.zeros(c.heads, past, c.d_model // c.heads)
        pos = torch.zeros(c.d_model, c.pos_kernel - 1)
        return [*convs, pos, torch.zeros(past, dtype=torch.bool), *[kv] * (2 * c.layers)]

    def forward(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """(hops * hop, 2, 16), *state -> (frames, outputs), *next state."""
        m, f = self.model, self.model.featurizer
        n_conv = len(f.convs)
        x = chunk.reshape(-1, CHANNELS).T
        next_state = []
        for i, conv in enumerate(f.convs):
            full = torch.cat([state[i], x], 1)
            next_state.append(_keep_last(full, f.pads[i]))
            x = conv(full[None])
            x = F.gelu(f.norm(x) if i == 0 else x)[0]
        n = x.shape[1]
        h = m.proj(m.feat_ln(x.T))  # (n, d)
        pos_in = torch.cat([state[n_conv], h.T], 1)
        h = h + F.gelu(m.pos_conv(pos_in[None])[0]).T
        valid = torch.cat([state[n_conv + 1], torch.ones(n, dtype=torch.bool)])
        past = self.window - 1
        lag = past + torch.arange(n)[:, None] - torch.arange(past + n)[None, :]
        mask = (lag >= 0) & (lag < self.window) & valid[None, :]
        next_state += [pos_in[:, n:], valid[n:]]
        kv = state[n_conv + 2 :]
        for layer, block in enumerate(m.blocks):
            q, k, v = block.qkv(block.ln1(h)).view(n, 3, block.heads, -1).permute(1, 2, 0, 3)
            k = torch.cat([kv[2 * layer], k], 1)
            v = torch.cat([kv[2 * layer + 1], v], 1)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            h = h + block.proj(y.transpose(0, 1).reshape(n, -1))
            h = h + block.ff(block.ln2(h))
            next_state += [k[:, n:], v[:, n:]]
        return (m.head(m.ln_f(h)), *next_state)


class TDSStep(nn.Module):
    """One streaming step of a causal TDS-ConvNet."""

    def __init__(self, model: TDSConvNet) -> None:
        super().__init__()
        if not supports_incremental(model):
            raise ValueError("incremental streaming needs a causal TDS-ConvNet (causal=True)")
        self.model = model
        self.hop = model.hop
        self.eval()  # the wrapper too: exporters restore its mode, and so the model's

    def initial_state(self) -> list[Tensor]:
        c = self.model.config
        convs = [
            torch.zeros(1, b.channels, b.width, c.kernel_width - 1)
            for b in self.model.blocks
            if isinstance(b, TDSConv2dBlock)
        ]
        return [torch.zeros(CHANNELS, c.n_fft - c.hop), *convs]

    def forward(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """(hops * hop, 2, 16), *state -> (frames, outputs), *next state."""
        m = self.model
        full = torch.cat([state[0], chunk.reshape(-1, CHANNELS).T], 1)
        next_state = [_keep_last(full, state[0].shape[1])]
        x = m.features(m.spectrogram.log_power(full[:, None])[None])
        conv_state = iter(state[1:])
        for block in m.blocks:
            if isinstance(block, TDSConv2dBlock):
                x, past = block.step(x, next(conv_state))
                next_state.append(past)
            else:
                x = block(x)
        return (m.finish(x)[0], *next_state)


def step_module(model: nn.Module) -> TransformerStep | TDSStep | None:
    """The step module of a model that streams incrementally, else None."""
    if not supports_incremental(model):
        return None
    return TDSStep(model) if isinstance(model, TDSConvNet) else TransformerStep(model)


class IncrementalStream:
    """Carries a step module's state across chunks of any size; samples short of a whole
    hop wait for the next chunk. ``reset()`` starts a new stream."""

    def __init__(self, step: TransformerStep | TDSStep, outputs: int) -> None:
        self.module, self.outputs = step, outputs
        self.reset()

    def reset(self) -> None:
        self.state = self.module.initial_state()
        self.pending = torch.zeros(0, 2, 16)

    @torch.inference_mode()
    def step(self, chunk: Tensor) -> Tensor:
        """(samples, 2, 16) of new signal -> (new frames, outputs)."""
        signal = torch.cat([self.pending, chunk.to(self.pending.dtype)])
        usable = len(signal) // self.module.hop * self.module.hop
        self.pending = signal[usable:]
        if usable == 0:
            return torch.zeros(0, self.outputs)
        out, *self.state = self.module(signal[:usable], *self.state)
        return out
