"""The paper's transformer encoder over raw sEMG, its presets, and the TDS-ConvNet baseline.

raw sEMG (B, T, 2, 16) at 2 kHz
  -> featurizer: 3 strided Conv1d over the 32 channels (20x: 100 Hz frames), GELU,
     a norm after the first conv (GroupNorm in the paper; BatchNorm for the causal
     laptop models, since GroupNorm(C, C) normalises over the whole window; or
     "frame", a LayerNorm of each frame over the channels, for the *-causal presets)
  -> LayerNorm + Linear to d_model, time masking (training only)
  -> convolutional positional embedding (wav2vec2 style, grouped, causal)
  -> N pre-LayerNorm transformer blocks, causal attention (optionally a bounded window)
  -> head: Linear to 99 classes, log-softmax for CTC; or Linear to 20 joint angles (pose)
Every convolution is padded on the left only, so frame i sees samples before
(i + 1) * hop and a window of T samples gives exactly T // hop frames.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semgkit.charset import CHARSET
from semgkit.format import CHANNELS, SAMPLE_RATE
from semgkit.pose_format import NUM_JOINTS
from semgkit.tds import TDSConfig, TDSConvNet, tds_flops_per_second


class CTCHead(nn.Module):
    """Per-frame log-probabilities over the 99 CTC classes."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(config.d_model, config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).log_softmax(-1)


class PoseHead(nn.Module):
    """Per-frame joint angles in radians (``num_classes`` = 20, emg2pose's hand): a linear
    regression from the encoder's frames, trained on emg2pose's masked L1 loss."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(config.d_model, config.num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


# The head is chosen by ModelConfig.head: CTC over the 99 classes (typing, emg2qwerty) or
# a regression of the hand's joint angles (pose, emg2pose); the encoder is the same.
HEADS: dict[str, type[nn.Module]] = {"ctc": CTCHead, "pose": PoseHead}
HEAD_OUTPUTS = {"ctc": CHARSET.num_classes, "pose": NUM_JOINTS}  # num_classes each needs


class FrameNorm(nn.LayerNorm):
    """LayerNorm of each frame over the channels of a (B, C, T) tensor: per frame, so causal."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


FEATURE_NORMS: dict[str, Any] = {
    "group": lambda c: nn.GroupNorm(c, c),  # each channel over the window (the paper)
    "batch": nn.BatchNorm1d,  # a fixed affine map per channel in eval mode
    "frame": FrameNorm,
}


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 128
    layers: int = 10
    heads: int = 16
    ff_mult: int = 4
    dropout: float = 0.2
    conv_channels: tuple[int, ...] = (128, 64, 64)
    conv_kernels: tuple[int, ...] = (11, 3, 3)
    conv_strides: tuple[int, ...] = (5, 2, 2)
    feat_norm: str = "group"  # "group" (paper), or causal and streamable: "batch", "frame"
    pos_kernel: int = 128  # frames covered by the positional convolution
    pos_groups: int = 16
    causal: bool = True
    attn_window: int | None = None  # frames of past each frame attends to (None: all)
    time_mask_p: float = 0.3  # fraction of frames covered by masked spans in training
    time_mask_span: int = 15
    head: str = "ctc"
    num_classes: int = CHARSET.num_classes

    def __post_init__(self) -> None:
        for name in ("conv_channels", "conv_kernels", "conv_strides"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by heads {self.heads}")
        if self.feat_norm not in FEATURE_NORMS:
            raise ValueError(f"feat_norm {self.feat_norm!r}: choose from {sorted(FEATURE_NORMS)}")
        check_head(self.head, self.num_classes)

    @property
    def hop(self) -> int:
        return math.prod(self.conv_strides)


def check_head(head: str, num_classes: int) -> None:
    """Refuse an unknown head, or one given the other task's number of outputs."""
    if head not in HEADS:
        raise ValueError(f"head {head!r}: choose from {sorted(HEADS)}")
    if num_classes != HEAD_OUTPUTS[head]:
        raise ValueError(
            f"head {head!r} has {HEAD_OUTPUTS[head]} outputs per frame, not num_classes="
            f"{num_classes} (override both: head={head!r}, num_classes={HEAD_OUTPUTS[head]})"
        )


def _laptop(d_model: int, layers: int, heads: int, channels: tuple[int, ...]) -> ModelConfig:
    """CPU-sized: narrow featurizer, causal BatchNorm, a short positional conv and a 2 s
    attention window, so the model streams with a bounded state."""
    return ModelConfig(
        d_model=d_model,
        layers=layers,
        heads=heads,
        conv_channels=channels,
        feat_norm="batch",
        pos_kernel=16,
        pos_groups=4,
        attn_window=200,
        dropout=0.1,
        time_mask_p=0.1,  # minutes of CPU training, not days: lighter regularisation
    )


def _causal(config: ModelConfig) -> ModelConfig:
    """A paper preset made streamable: each frame normalised on its own instead of GroupNorm
    over the window, and attention limited to 500 frames (5 s, the training window with its
    context), so within a training window it attends exactly as the paper's model does."""
    return replace(config, feat_norm="frame", attn_window=500)


PRESETS: dict[str, ModelConfig | TDSConfig] = {
    # the paper's family (semgkit/paper.py): tiny 2.2M, small 5.4M, large 109M, and sizes between
    "tiny": ModelConfig(d_model=128, layers=10),
    "small": ModelConfig(d_model=256, layers=6),
    "medium": ModelConfig(d_model=512, layers=6),
    "base": ModelConfig(d_model=768, layers=8),
    "large": ModelConfig(d_model=1024, layers=8),
    "tiny-causal": _causal(ModelConfig(d_model=128, layers=10)),
    "small-causal": _causal(ModelConfig(d_model=256, layers=6)),
    # the laptop ladder (about 40x in parameters) and its teacher's 50x student
    "lap-xxs": _laptop(16, 2, 2, (32, 16, 16)),
    "lap-xs": _laptop(32, 2, 2, (32, 32, 32)),
    "lap-s": _laptop(48, 3, 4, (48, 32, 32)),
    "lap-m": _laptop(80, 4, 4, (64, 48, 48)),
    "lap-l": _laptop(128, 5, 8, (64, 64, 64)),
    "lap-student": _laptop(16, 2, 2, (24, 16, 16)),
    # the pose chapter's student: 50x below lap-m with the pose head (7.7k parameters)
    "lap-pose-student": _laptop(8, 1, 2, (16, 8, 8)),
    # emg2qwerty's baseline as published, and a CPU-sized variant
    "tds": TDSConfig(),
    "tds-laptop": TDSConfig(mlp_features=96, block_channels=(16, 16), kernel_width=16),
}


class Featurizer(nn.Module):
    """Strided convolutions from raw 2 kHz sEMG to feature frames."""

    def __init__(self, config: ModelConfig, in_channels: int = CHANNELS) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.pads = []
        for c_out, k, s in zip(
            config.conv_channels, config.conv_kernels, config.conv_strides, strict=True
        ):
            self.convs.append(nn.Conv1d(in_channels, c_out, k, stride=s))
            self.pads.append(max(k - s, 0))
            in_channels = c_out
        c0 = config.conv_channels[0]
        self.norm = FEATURE_NORMS[config.feat_norm](c0)

    def forward(self, x: Tensor) -> Tensor:  # (B, 32, T) -> (B, C, T // hop)
        for i, (conv, pad) in enumerate(zip(self.convs, self.pads, strict=True)):
            x = conv(F.pad(x, (pad, 0)))
            if i == 0:
                x = self.norm(x)
            x = F.gelu(x)
        return x


class Block(nn.Module):
    """Pre-LayerNorm transformer block; attention through scaled_dot_product_attention."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.d_model
        self.heads = config.heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(
            nn.Linear(d, config.ff_mult * d),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.ff_mult * d, d),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, mask: Tensor | None, is_causal: bool) -> Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.heads, D // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            is_causal=is_causal and mask is None,
        )  # no dropout on attention weights: on CPU it costs several times the attention
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.ff(self.ln2(x)))


class SEMGTransformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.hop = config.hop
        d = config.d_model
        self.featurizer = Featurizer(config)
        self.feat_ln = nn.LayerNorm(config.conv_channels[-1])
        self.proj = nn.Linear(config.conv_channels[-1], d)
        self.mask_embedding = nn.Parameter(torch.zeros(d).uniform_())
        self.pos_conv = nn.Conv1d(d, d, config.pos_kernel, groups=config.pos_groups)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = HEADS[config.head](config)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths, self.hop, rounding_mode="floor")

    def forward(self, emg: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, T, 2, 16) raw sEMG -> (B, T // hop, classes) log-probabilities."""
        if emg.dim() != 4 or tuple(emg.shape[2:]) != (2, 16):
            raise ValueError(f"emg shaped {tuple(emg.shape)}: expected (batch, samples, 2, 16)")
        if emg.shape[1] < self.hop:
            raise ValueError(f"emg has {emg.shape[1]} samples: one frame needs {self.hop} samples")
        x = self.featurizer(emg.flatten(2).transpose(1, 2))  # (B, C, F)
        x = self.proj(self.feat_ln(x.transpose(1, 2)))  # (B, F, d)
        if self.training and self.config.time_mask_p > 0:
            x = self._time_mask(x)
        pos = self.pos_conv(F.pad(x.transpose(1, 2), self._pos_pad()))
        x = x + F.gelu(pos).transpose(1, 2)
        mask = self._attn_mask(x.shape[1], lengths, x.device)
        for block in self.blocks:
            x = block(x, mask, self.config.causal)
        return self.head(self.ln_f(x))

    def _pos_pad(self) -> tuple[int, int]:
        k = self.config.pos_kernel
        return (k - 1, 0) if self.config.causal else ((k - 1) // 2, k // 2)

    def _time_mask(self, x: Tensor) -> Tensor:
        """Replace random spans of frames by a learned embedding (wav2vec2's masking)."""
        B, T, _ = x.shape
        span = self.config.time_mask_span
        spans = int(self.config.time_mask_p * T / span)
        if spans == 0:
            return x
        starts = torch.randint(0, max(1, T - span), (B, spans), device=x.device)
        frames = torch.arange(T, device=x.device)
        hit = (frames[None, None] >= starts[..., None]) & (frames < starts[..., None] + span)
        return torch.where(hit.any(1)[..., None], self.mask_embedding.to(x.dtype), x)

    def _attn_mask(self, frames: int, lengths: Tensor | None, device) -> Tensor | None:
        """None when plain causal attention suffices; else a boolean (B|1, 1, F, F) mask."""
        c = self.config
        if c.causal and c.attn_window is None:
            return None  # with causal attention, real frames never see the padding after them
        i = torch.arange(frames, device=device)
        allowed = torch.ones(frames, frames, dtype=torch.bool, device=device)
        if c.causal:
            allowed = allowed & (i[None, :] <= i[:, None])
        if c.attn_window is not None:
            allowed = allowed & (i[:, None] - i[None, :] < c.attn_window)
        allowed = allowed[None, None]
        if not c.causal and lengths is not None:
            real = i[None, :] < self.output_lengths(lengths).to(device)[:, None]
            allowed = allowed & real[:, None, None, :]
        return allowed


def resolve(name_or_config: str | ModelConfig | TDSConfig, **overrides: Any):
    """A preset name or a config (dict from JSON allowed), with fields overridden."""
    if isinstance(name_or_config, str):
        if name_or_config not in PRESETS:
            raise ValueError(f"unknown preset {name_or_config!r}; known: {sorted(PRESETS)}")
        config = PRESETS[name_or_config]
    elif isinstance(name_or_config, dict):
        kind = TDSConfig if name_or_config.get("arch") == "tds" else ModelConfig
        known = {f.name for f in fields(kind)}
        config = kind(**{k: v for k, v in name_or_config.items() if k in known})
    else:
        config = name_or_config
    unknown = sorted(set(overrides) - {f.name for f in fields(config)})
    if unknown:
        raise ValueError(
            f"model field(s) {unknown} unknown to a {type(config).__name__}; "
            f"known: {sorted(f.name for f in fields(config))}"
        )
    return replace(config, **overrides) if overrides else config


def config_dict(config: ModelConfig | TDSConfig) -> dict[str, Any]:
    """A JSON-ready dict that :func:`resolve` turns back into the same config."""
    return {"arch": "tds" if isinstance(config, TDSConfig) else "transformer", **asdict(config)}


def build(name_or_config: str | ModelConfig | TDSConfig | dict, **overrides: Any) -> nn.Module:
    config = resolve(name_or_config, **overrides)
    if isinstance(config, TDSConfig):
        check_head(config.head, config.num_classes)  # its head is its own Linear
        return TDSConvNet(config)
    return SEMGTransformer(config)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_second(name_or_config: str | ModelConfig | TDSConfig, window_s: float = 4.0) -> float:
    """Forward FLOPs (2 x multiply-adds) per second of 2 kHz sEMG, counted layer by layer.

    Attention scores count each frame's context: the window, or half of ``window_s`` on
    average for unbounded causal attention over a ``window_s`` input."""
    c = resolve(name_or_config)
    if isinstance(c, TDSConfig):
        return tds_flops_per_second(c)
    macs, rate, c_in = 0.0, float(SAMPLE_RATE), CHANNELS
    for c_out, k, s in zip(c.conv_channels, c.conv_kernels, c.conv_strides, strict=True):
        rate /= s
        macs += rate * c_in * c_out * k
        c_in = c_out
    d, frames = c.d_model, rate  # frames per second
    context = c.attn_window or window_s * frames / (2 if c.causal else 1)
    macs += frames * c_in * d  # projection
    macs += frames * d * (d // c.pos_groups) * c.pos_kernel  # positional conv
    per_layer = 4 * d * d + 2 * c.ff_mult * d * d + 2 * min(context, window_s * frames) * d
    macs += frames * c.layers * per_layer
    macs += frames * d * c.num_classes
    return 2.0 * macs
