"""The stress perturbations themselves, each a frozen dataclass called as ``step(emg, ctx)``
on a (T, 2, 16) chunk: noise at an SNR, hum, dead electrodes, rotation, sub-electrode shift,
gain drift and band lag. :mod:`semgkit.perturb` composes them and reads their specs."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from semgkit.augment import lag_right_band
from semgkit.format import CHANNELS, ELECTRODES, SAMPLE_RATE

EMG_BAND_HZ = (20.0, 450.0)  # where sEMG's power lies: coloured noise no filter removes


@dataclass(frozen=True)
class Context:
    """A chunk's place: ``start`` its first sample in a signal of ``total`` samples,
    ``power`` the clean signal's mean square, ``seed`` the signal's seed, ``chunk`` the
    chunk's number (draws that differ per chunk key on it)."""

    start: int
    total: int
    power: float
    seed: tuple[int, ...]
    chunk: int = 0

    def rng(self, name: str, per_chunk: bool = False) -> np.random.Generator:
        """A generator for draw ``name``: one per signal, or one per chunk."""
        keys = [*self.seed, zlib.crc32(name.encode())] + ([self.chunk] if per_chunk else [])
        return np.random.default_rng(keys)

    def times(self, length: int) -> np.ndarray:
        """The chunk's sample times in seconds from the start of the signal."""
        return (self.start + np.arange(length)) / SAMPLE_RATE


def _scale_to(x: np.ndarray, power: float) -> np.ndarray:
    """``x`` scaled to mean square ``power`` (zero stays zero)."""
    ms = float(np.mean(np.square(x, dtype=np.float64)))
    return x * np.float32(math.sqrt(power / ms)) if ms > 0 else x


def band_limited(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``noise`` (time first) keeping only the frequencies in ``[lo, hi]`` Hz."""
    spectrum = np.fft.rfft(noise, axis=0)
    f = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
    spectrum[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spectrum, n=len(noise), axis=0).astype(np.float32)


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value}: must be positive")


@dataclass(frozen=True)
class Noise:
    """Gaussian noise ``snr`` dB below the clean signal: white, or ``color=emg``
    (20-450 Hz, inside sEMG's own band). Scaled exactly per chunk."""

    snr: float
    color: str = "white"

    def __post_init__(self) -> None:
        if self.color not in ("white", "emg"):
            raise ValueError(f"color={self.color!r}: choose white or emg")

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        noise = ctx.rng("noise", per_chunk=True).standard_normal(emg.shape, dtype=np.float32)
        if self.color == "emg":
            noise = band_limited(noise, *EMG_BAND_HZ)
        return emg + _scale_to(noise, ctx.power / 10 ** (self.snr / 10))


@dataclass(frozen=True)
class Hum:
    """Powerline interference at ``freq`` Hz and its ``harmonics`` (amplitude 1/k), ``snr``
    dB below the signal; one phase per harmonic, a gain per channel, drawn per session."""

    snr: float = 10.0
    freq: float = 50.0
    harmonics: int = 3

    def __post_init__(self) -> None:
        _positive("freq", self.freq)
        _positive("harmonics", self.harmonics)
        if self.freq * self.harmonics >= SAMPLE_RATE / 2:
            raise ValueError(
                f"freq={self.freq}, harmonics={self.harmonics}: the top harmonic must lie "
                f"below {SAMPLE_RATE / 2:g} Hz"
            )

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        rng = ctx.rng("hum")
        phases = rng.uniform(0, 2 * np.pi, self.harmonics)
        gains = rng.uniform(0.5, 1.5, emg.shape[1:])
        k = np.arange(1, self.harmonics + 1)
        t = ctx.times(len(emg))[:, None]
        wave = (np.sin(2 * np.pi * self.freq * k * t + phases) / k).sum(axis=1)
        mean_square = np.sum(1 / k**2) / 2 * np.mean(gains**2)  # over whole periods
        scale = math.sqrt(ctx.power / 10 ** (self.snr / 10) / mean_square)
        return emg + (scale * wave[:, None, None] * gains).astype(np.float32)


@dataclass(frozen=True)
class Dead:
    """Electrodes that read nothing (``mode=zero``) or, disconnected, rail noise
    (``mode=rail``: Gaussian at 5x the signal's RMS, clipped at 10x): the channels ``ch``
    (0-31, band * 16 + electrode; several joined by ``+``) or ``n`` drawn per session."""

    ch: tuple[int, ...] = ()
    n: int = 0
    mode: str = "zero"

    def __post_init__(self) -> None:
        if self.ch and self.n:
            raise ValueError("give ch or n, not both")
        for c in self.ch:
            if not 0 <= c < CHANNELS:
                raise ValueError(f"electrode {c} out of range 0-{CHANNELS - 1}")
        if len(set(self.ch)) != len(self.ch):
            raise ValueError(f"ch={'+'.join(map(str, self.ch))}: an electrode named twice")
        if not 0 <= self.n <= CHANNELS:
            raise ValueError(f"n={self.n}: between 0 and {CHANNELS} electrodes")
        if self.mode not in ("zero", "rail"):
            raise ValueError(f"mode={self.mode!r}: choose zero or rail")

    def channels(self, ctx: Context) -> list[int]:
        """The dead channels of this signal (``ch``, or ``n`` drawn once per signal)."""
        if self.ch:
            return list(self.ch)
        return sorted(ctx.rng("dead").choice(CHANNELS, self.n, replace=False).tolist())

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        out = emg.copy()
        chosen = self.channels(ctx)
        bands, electrodes = np.divmod(np.asarray(chosen, dtype=int), ELECTRODES)
        if self.mode == "zero":
            out[:, bands, electrodes] = 0
        else:
            rms = math.sqrt(ctx.power)
            noise = ctx.rng("rail", per_chunk=True).standard_normal((len(emg), len(chosen)))
            out[:, bands, electrodes] = np.clip(5 * rms * noise, -10 * rms, 10 * rms)
        return out


@dataclass(frozen=True)
class Rotate:
    """Both bands turned by ``k`` electrodes around the forearm (16 is a full turn)."""

    k: int

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        return np.roll(emg, self.k, axis=-1)


@dataclass(frozen=True)
class Shift:
    """Both bands turned by ``e`` electrodes, ``e`` any real number: each channel reads
    the linear interpolation of its two neighbours around the band's circle."""

    e: float

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        whole = math.floor(self.e)
        frac = np.float32(self.e - whole)
        out = np.roll(emg, whole, axis=-1)
        return out if frac == 0 else (1 - frac) * out + frac * np.roll(out, 1, axis=-1)


@dataclass(frozen=True)
class Drift:
    """Each channel's gain drifts linearly over the signal, from 1 to 1 + g, with g
    drawn per channel uniformly within +-``pct`` percent (electrode contact changing)."""

    pct: float

    def __post_init__(self) -> None:
        if not 0 <= self.pct < 100:
            raise ValueError(f"pct={self.pct}: between 0 and 100")

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        g = ctx.rng("drift").uniform(-self.pct, self.pct, emg.shape[1:]) / 100
        progress = (ctx.start + np.arange(len(emg))) / max(ctx.total - 1, 1)
        return (emg * (1 + progress[:, None, None] * g)).astype(np.float32)


@dataclass(frozen=True)
class Jitter:
    """The right band lags the left by ``ms`` milliseconds (negative: leads); samples
    shifted in from outside the signal are zeros."""

    ms: float

    @property
    def samples(self) -> int:
        return round(self.ms * SAMPLE_RATE / 1000)

    @property
    def reach(self) -> int:
        return abs(self.samples)

    def __call__(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        return lag_right_band(emg, self.samples)
