"""emg2qwerty's TDS-ConvNet baseline (Sivakumar et al., 2024), rebuilt from its description.

The pipeline, per 16-sample hop of 2 kHz sEMG (125 Hz frames):

1. log power spectrogram of each of the 32 electrodes (hann window, n_fft 64: 33 bins);
2. SpecAugment in training (time and frequency masks on the log spectrogram), as
   emg2qwerty applies it in its data transforms;
3. BatchNorm2d over the 32 electrode channels;
4. per band, a rotation-invariant MLP: one Linear(16 x 33 -> 384) + ReLU applied to the
   band rolled by -1, 0, +1 electrodes, mean-pooled, so a watch band worn one electrode
   off gives similar features; the two bands concatenated give 768 features;
5. time-depth-separable blocks: a temporal-only Conv2d over (channels, width) views of
   the features and a two-layer fully connected block, each residual with LayerNorm;
6. Linear -> log_softmax over the 99 CTC classes.

emg2qwerty's convolutions are unpadded and shrink the sequence by kernel_width - 1 frames
per block; here every stage is padded on the left instead (``causal=True``), so frame i
depends only on samples before (i + 1) * hop and a signal of T samples gives exactly
T // hop frames, which offline evaluation and streaming both rely on. BatchNorm is kept:
in eval mode it is a fixed per-channel affine map, hence per frame and causal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from semgkit.format import BANDS as BAND_NAMES
from semgkit.format import ELECTRODES, SAMPLE_RATE

BANDS = len(BAND_NAMES)
LOG_EPS = 1e-6  # added to the power before the log, as emg2qwerty's LogSpectrogram does


@dataclass(frozen=True)
class TDSConfig:
    n_fft: int = 64  # log spectrogram: 2 kHz -> 125 Hz frames, 33 bins
    hop: int = 16
    mlp_features: int = 384  # per-band rotation-invariant MLP width
    offsets: tuple[int, ...] = (-1, 0, 1)  # band rotations pooled by the MLP
    block_channels: tuple[int, ...] = (24, 24, 24, 24)
    kernel_width: int = 32  # temporal kernel of each TDS conv block, in frames
    num_classes: int = 99
    head: str = "ctc"  # or "pose": 20 joint angles per frame, no log-softmax (models.HEADS)
    causal: bool = True  # left-pad so frame i sees only samples < (i + 1) * hop
    # SpecAugment (training only): up to N masks per example, widths drawn in [0, max).
    time_masks: int = 3
    time_mask_frames: int = 25
    freq_masks: int = 2
    freq_mask_bins: int = 4

    def __post_init__(self) -> None:
        # Configs read back from JSON carry lists; keep the dataclass hashable.
        object.__setattr__(self, "offsets", tuple(self.offsets))
        object.__setattr__(self, "block_channels", tuple(self.block_channels))
        positive = ("n_fft", "hop", "mlp_features", "kernel_width", "num_classes")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TDSConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_fft < self.hop:
            raise ValueError(
                f"TDSConfig.n_fft ({self.n_fft}) must be >= hop ({self.hop}) so frames tile the signal"
            )
        if not self.offsets:
            raise ValueError("TDSConfig.offsets must name at least one band rotation, e.g. (0,)")
        if not self.block_channels:
            raise ValueError("TDSConfig.block_channels must list at least one TDS block")
        for channels in self.block_channels:
            if channels < 1 or self.num_features % channels:
                raise ValueError(
                    f"TDSConfig.block_channels entry {channels} must divide the feature count "
                    f"2 * mlp_features = {self.num_features}"
                )
        for name in ("time_masks", "time_mask_frames", "freq_masks", "freq_mask_bins"):
            if getattr(self, name) < 0:
                raise ValueError(f"TDSConfig.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def freq_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def num_features(self) -> int:
        return BANDS * self.mlp_features


TDS_PUBLISHED = TDSConfig()  # emg2qwerty's configuration, about 5.3M parameters
TDS_LAPTOP = TDSConfig(mlp_features=96, block_channels=(16, 16), kernel_width=16)


def _pad(total: int, causal: bool) -> tuple[int, int]:
    """(left, right) padding of `total` steps: all on the left when causal, else centred."""
    return (total, 0) if causal else (total // 2, total - total // 2)


class LogSpectrogram(nn.Module):
    """(B, T, 2, 16) sEMG -> (B, 2, 16, freq, T // hop) log10 power, window-normalised.

    The short-time Fourier transform is written as what it is, a strided convolution
    with a hann-windowed DFT basis: it equals ``torch.stft(center=False)`` to float
    rounding and, unlike torch.stft's complex output, exports to ONNX. Padding n_fft - hop
    samples before the signal (emg2qwerty's frames are unpadded) makes frame i end at
    sample (i + 1) * hop."""

    def __init__(self, config: TDSConfig):
        super().__init__()
        self.hop = config.hop
        self.padding = _pad(config.n_fft - config.hop, config.causal)
        window = torch.hann_window(config.n_fft, dtype=torch.float64)
        n = torch.arange(config.n_fft, dtype=torch.float64)
        k = torch.arange(config.freq_bins, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n / config.n_fft
        basis = torch.cat([angle.cos(), -angle.sin()]) * window  # (2 * freq, n_fft)
        self.register_buffer("basis", basis[:, None].float(), persistent=False)
        self.scale = float(window.square().sum())  # torchaudio's normalized=True

    def forward(self, emg: Tensor) -> Tensor:
        b, t = emg.shape[:2]
        x = F.pad(emg.permute(0, 2, 3, 1).reshape(b * BANDS * ELECTRODES, 1, t), self.padding)
        spec = self.log_power(x)
        return spec.reshape(b, BANDS, ELECTRODES, *spec.shape[-2:])

    def log_power(self, padded: Tensor) -> Tensor:
        """(N, 1, samples) already padded -> (N, freq, frames) log10 power."""
        re, im = F.conv1d(padded, self.basis, stride=self.hop).chunk(2, dim=1)
        return torch.log10((re.square() + im.square()) / self.scale + LOG_EPS)


def _random_spans(count: int, max_width: int, size: int, batch: int, device) -> Tensor:
    """Boolean (batch, 2, 16, size): up to `count` spans per example, independent per electrode.

    Like emg2qwerty's SpecAugment: the number of masks is drawn in [0, count] per example,
    each mask's width uniformly in [0, max_width) and its start uniformly where it fits."""
    n = torch.randint(0, count + 1, (batch, 1, 1, 1), device=device)
    shape = (batch, BANDS, ELECTRODES, count)
    widths = (torch.rand(shape, device=device) * min(max_width, size)).floor()
    widths = widths * (torch.arange(count, device=device) < n)
    starts = (torch.rand(shape, device=device) * (size - widths)).floor()
    pos = torch.arange(size, device=device)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])
    return inside.any(dim=-2)


def spec_augment(spec: Tensor, config: TDSConfig) -> Tensor:
    """Zero random time and frequency spans of a (B, 2, 16, freq, frames) log spectrogram."""
    b, _, _, bins, frames = spec.shape
    masked = torch.zeros_like(spec, dtype=torch.bool)
    if config.time_masks and config.time_mask_frames:
        spans = _random_spans(config.time_masks, config.time_mask_frames, frames, b, spec.device)
        masked = masked | spans[..., None, :]
    if config.freq_masks and config.freq_mask_bins:
        spans = _random_spans(config.freq_masks, config.freq_mask_bins, bins, b, spec.device)
        masked = masked | spans[..., :, None]
    return spec.masked_fill(masked, 0.0)


class RotationInvariantMLP(nn.Module):
    """(..., 16, freq) -> (..., out): one MLP over the band rolled by each offset, mean-pooled."""

    def __init__(self, in_features: int, out_features: int, offsets: tuple[int, ...]):
        super().__init__()
        self.offsets = offsets
        self.mlp = nn.Sequential(nn.Linear(in_features, out_features), nn.ReLU())

    def forward(self, band: Tensor) -> Tensor:
        rolled = torch.stack([band.roll(k, dims=-2) for k in self.offsets], dim=-3)
        return self.mlp(rolled.flatten(start_dim=-2)).mean(dim=-2)


class TDSConv2dBlock(nn.Module):
    """(B, F, C) -> (B, F, C): the features viewed as (channels, C / channels) planes and
    convolved over time only, so parameters grow with channels^2 * kernel, not C^2."""

    def __init__(self, channels: int, width: int, kernel_width: int, causal: bool):
        super().__init__()
        self.channels, self.width = channels, width
        self.padding = _pad(kernel_width - 1, causal)
        self.conv2d = nn.Conv2d(channels, channels, kernel_size=(1, kernel_width))
        self.layer_norm = nn.LayerNorm(channels * width)

    def forward(self, inputs: Tensor) -> Tensor:
        return self._convolve(F.pad(self._planes(inputs), self.padding), inputs)

    def step(self, inputs: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        """Streaming: ``past`` holds the last kernel_width - 1 frames of planes (zeros at
        the start, as the causal padding) -> (output, the next past)."""
        full = torch.cat([past, self._planes(inputs)], -1)
        return self._convolve(full, inputs), full[..., full.shape[-1] - past.shape[-1] :]

    def _planes(self, inputs: Tensor) -> Tensor:  # (B, F, C) -> (B, channels, width, F)
        b, frames, _ = inputs.shape
        return inputs.transpose(1, 2).reshape(b, self.channels, self.width, frames)

    def _convolve(self, planes: Tensor, inputs: Tensor) -> Tensor:
        b, frames, c = inputs.shape
        x = torch.relu(self.conv2d(planes)).reshape(b, c, frames).transpose(1, 2)
        return self.layer_norm(x + inputs)


class TDSFullyConnectedBlock(nn.Module):
    """(B, F, C) -> (B, F, C): Linear -> ReLU -> Linear, residual, LayerNorm."""

    def __init__(self, num_features: int):
        super().__init__()
        self.fc_block = nn.Sequential(
            nn.Linear(num_features, num_features),
            nn.ReLU(),
            nn.Linear(num_features, num_features),
        )
        self.layer_norm = nn.LayerNorm(num_features)

    def forward(self, inputs: Tensor) -> Tensor:
        return self.layer_norm(self.fc_block(inputs) + inputs)


class TDSConvNet(nn.Module):
    """Raw sEMG (B, T, 2, 16) -> CTC log-probabilities (B, T // hop, num_classes)."""

    def __init__(self, config: TDSConfig):
        super().__init__()
        self.config = config
        self.hop = config.hop
        self.spectrogram = LogSpectrogram(config)
        self.norm = nn.BatchNorm2d(BANDS * ELECTRODES)
        in_features = ELECTRODES * config.freq_bins
        self.band_mlps = nn.ModuleList(
            RotationInvariantMLP(in_features, config.mlp_features, config.offsets)
            for _ in range(BANDS)
        )
        blocks: list[nn.Module] = []
        for channels in config.block_channels:
            width = config.num_features // channels
            blocks.append(TDSConv2dBlock(channels, width, config.kernel_width, config.causal))
            blocks.append(TDSFullyConnectedBlock(config.num_features))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(config.num_features, config.num_classes)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths, self.hop, rounding_mode="floor")

    def forward(self, emg: Tensor, lengths: Tensor | None = None) -> Tensor:
        """`lengths` is accepted for the shared model interface and not needed: with
        causal=True, padding after a sequence never reaches that sequence's frames (in
        training, BatchNorm's batch statistics do include padded frames, as in emg2qwerty)."""
        if emg.dim() != 4 or emg.shape[2:] != (BANDS, ELECTRODES):
            raise ValueError(
                f"TDSConvNet: emg must be (batch, samples, 2, 16), got {tuple(emg.shape)}"
            )
        if emg.shape[1] < self.hop:
            raise ValueError(
                f"TDSConvNet: need at least hop={self.hop} samples for one frame, got {emg.shape[1]}"
            )
        spec = self.spectrogram(emg)  # (B, 2, 16, freq, frames)
        if self.training:
            spec = spec_augment(spec, self.config)
        return self.finish(self.blocks(self.features(spec)))

    def features(self, spec: Tensor) -> Tensor:
        """Log spectrogram (B, 2, 16 | 32, freq, frames) -> band MLP features (B, frames, C)."""
        b, bins, frames = spec.shape[0], spec.shape[-2], spec.shape[-1]
        spec = self.norm(spec.reshape(b, BANDS * ELECTRODES, bins, frames))
        x = spec.reshape(b, BANDS, ELECTRODES, bins, frames).permute(0, 4, 1, 2, 3)
        return torch.cat([mlp(x[:, :, i]) for i, mlp in enumerate(self.band_mlps)], dim=-1)

    def finish(self, x: Tensor) -> Tensor:
        """Block outputs (B, frames, C) -> the head's outputs per frame."""
        out = self.head(x)
        return out if self.config.head == "pose" else out.log_softmax(dim=-1)


def tds_flops_per_second(config: TDSConfig, sample_rate: float = SAMPLE_RATE) -> float:
    """Floating-point operations (multiply-adds x 2) per second of sEMG at `sample_rate`.

    Counts the spectrogram's windowed DFT (computed as a matrix product, not an FFT), the
    band MLPs (once per rotation), the temporal convolutions, the fully connected blocks
    and the head. Biases, norms, activations, the power, the log and the softmax are left
    out (a few flops per value each, under 1% of the total here)."""
    nf = config.num_features
    macs = BANDS * ELECTRODES * config.n_fft * 2 * config.freq_bins
    macs += BANDS * len(config.offsets) * ELECTRODES * config.freq_bins * config.mlp_features
    macs += sum(c * c * config.kernel_width * (nf // c) for c in config.block_channels)
    macs += len(config.block_channels) * 2 * nf * nf
    macs += nf * config.num_classes
    return 2 * macs * sample_rate / config.hop
