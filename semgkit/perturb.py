"""Stress perturbations of sEMG: what goes wrong with a worn band, as seeded transforms.

Each perturbation is a frozen dataclass called as ``step(emg, ctx)`` on a (T, 2, 16) chunk
of signal; :class:`Context` says where the chunk sits (its first sample in a signal of
``total`` samples), the clean signal's power (every SNR is relative to it) and the seed.
A :class:`Perturbation` composes steps and applies them to windows (``apply``, also a
``(emg, rng)`` training transform) or to whole sessions (``session``): a session is
perturbed block by block, each block a pure function of (seed, session, block), so
overlapping windows see the same perturbed samples and evaluation needs no full-length
copy. ``parse("noise:snr=10,color=emg")`` reads the ``--perturb`` flag's specs; the
simulated other sensors of `semgkit.sensors` (``mirror``, ``sparse:n=8``) are steps too.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from semgkit.augment import lag_right_band
from semgkit.format import CHANNELS, ELECTRODES, SAMPLE_RATE
from semgkit.sensors import Mirror, Sparse

EMG_BAND_HZ = (20.0, 450.0)  # where sEMG's power lies: coloured noise no filter removes
BLOCK = 8192  # samples a session is perturbed in (4 s): memory per cached block, ~1 MB


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


KINDS: dict[str, type] = {
    "noise": Noise,
    "hum": Hum,
    "dead": Dead,
    "rotate": Rotate,
    "shift": Shift,
    "drift": Drift,
    "jitter": Jitter,
    "mirror": Mirror,  # simulated other sensors (semgkit.sensors)
    "sparse": Sparse,
}
_NAMES = {kind: name for name, kind in KINDS.items()}


@dataclass(frozen=True)
class Perturbation:
    """Steps applied in order, seeded by ``seed``; ``specs`` the flags they came from."""

    steps: tuple[Any, ...]
    seed: int = 0
    BLOCK: ClassVar[int] = BLOCK

    @property
    def reach(self) -> int:
        """Samples a step reads beyond its output (blocks overlap by this much)."""
        return sum(getattr(step, "reach", 0) for step in self.steps)

    @property
    def specs(self) -> list[str]:
        return [spec(step) for step in self.steps]

    def run(self, emg: np.ndarray, ctx: Context) -> np.ndarray:
        for step in self.steps:
            emg = step(emg, ctx)
        return emg.astype(np.float32, copy=False)

    def apply(self, emg: np.ndarray, seed: int | None = None) -> np.ndarray:
        """A (T, 2, 16) window or a (batch, T, 2, 16) batch, each window its own signal
        (power, drift, draws; item b of a batch seeded by (seed, b))."""
        seed = self.seed if seed is None else seed
        if emg.ndim == 4:
            return np.stack([self._window(x, (seed, b)) for b, x in enumerate(emg)])
        if emg.ndim != 3:
            raise ValueError(f"perturb: expected (T, 2, 16) or (batch, T, 2, 16), got {emg.shape}")
        return self._window(emg, (seed,))

    def _window(self, emg: np.ndarray, seed: tuple[int, ...]) -> np.ndarray:
        power = float(np.mean(np.square(emg, dtype=np.float64)))
        return self.run(emg, Context(0, len(emg), power, seed))

    def __call__(self, emg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """As a training transform (``data.Transform``): a fresh seed from ``rng``."""
        return self.apply(emg, int(rng.integers(2**32)))

    def session(self, session: Any) -> PerturbedSession:
        return PerturbedSession(session, self)


class PerturbedSession:
    """A session whose ``window(lo, hi)`` reads the perturbed signal; everything else
    (labels, user, name) is the session's. Seeded by (seed, session name)."""

    def __init__(self, session: Any, perturbation: Perturbation, cached_blocks: int = 8) -> None:
        self._session, self._perturbation = session, perturbation
        self._seed = (perturbation.seed, zlib.crc32(session.session_name.encode()))
        self._blocks: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cached = cached_blocks
        self._power: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def __len__(self) -> int:
        return len(self._session)

    @property
    def power(self) -> float:
        """The clean session's mean square, read once in blocks."""
        if self._power is None:
            n, total = len(self), 0.0
            for lo in range(0, n, BLOCK):
                total += float(
                    np.sum(
                        np.square(self._session.window(lo, min(lo + BLOCK, n)), dtype=np.float64)
                    )
                )
            self._power = total / (n * CHANNELS)
        return self._power

    def _block(self, j: int) -> np.ndarray:
        if j in self._blocks:
            self._blocks.move_to_end(j)
            return self._blocks[j]
        m, lo = self._perturbation.reach, j * BLOCK
        hi = min(lo + BLOCK, len(self))
        ctx = Context(lo - m, len(self), self.power, self._seed, chunk=j)
        block = self._perturbation.run(self._session.window(lo - m, hi + m), ctx)[m : m + hi - lo]
        self._blocks[j] = block
        if len(self._blocks) > self._cached:
            self._blocks.popitem(last=False)
        return block

    def window(self, lo: int, hi: int) -> np.ndarray:
        """Perturbed samples ``lo:hi`` (T, 2, 16); outside the session zeros, as ``Session``."""
        out = np.zeros((hi - lo, 2, ELECTRODES), dtype=np.float32)
        a, b = max(lo, 0), min(hi, len(self))
        for j in range(a // BLOCK, (b - 1) // BLOCK + 1) if b > a else ():
            block, start = self._block(j), j * BLOCK
            x, y = max(a, start), min(b, start + len(block))
            out[x - lo : y - lo] = block[x - start : y - start]
        return out


def spec(step: Any) -> str:
    """The ``NAME:PARAM=V,...`` spec of a step (its non-default parameters)."""
    params = []
    for f in dataclasses.fields(step):
        value = getattr(step, f.name)
        if f.default is dataclasses.MISSING or value != f.default:
            text = "+".join(map(str, value)) if isinstance(value, tuple) else f"{value}"
            params.append(f"{f.name}={text}")
    name = _NAMES[type(step)]
    return f"{name}:{','.join(params)}" if params else name


_READERS = {  # a field's annotation -> (reader, what the value must be)
    "float": (float, "a number"),
    "int": (int, "an integer"),
    "tuple[int, ...]": (lambda t: tuple(int(c) for c in t.split("+")), "integers joined by +"),
    "str": (str, "text"),
}


def _value(kind: str, name: str, text: str) -> Any:
    read, what = _READERS[kind]
    try:
        return read(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not {what}") from None


def parse_step(text: str, flag: str = "--perturb") -> Any:
    """One ``NAME`` or ``NAME:PARAM=V,...`` spec -> its step; errors name ``flag``."""
    name, _, rest = text.partition(":")
    try:
        kind = KINDS.get(name.strip())
        if kind is None:
            raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(KINDS)}")
        fields = {f.name: f for f in dataclasses.fields(kind)}
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"{item!r}: write PARAM=VALUE")
            if key not in fields:
                raise ValueError(f"{name} has no parameter {key!r} (it takes {', '.join(fields)})")
            params[key] = _value(str(fields[key].type), key, value.strip())
        needed = [
            f for f, v in fields.items() if v.default is dataclasses.MISSING and f not in params
        ]
        if needed:
            raise ValueError(f"{name} needs {', '.join(f'{f}=...' for f in needed)}")
        step = kind(**params)
        for key, value in params.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{key}={value}: must be finite")
        return step
    except ValueError as err:
        raise ValueError(f"{flag} {text!r}: {err}") from None


def parse(specs: Sequence[str], seed: int = 0, flag: str = "--perturb") -> Perturbation | None:
    """Specs -> one :class:`Perturbation` applying them in order; None for no specs."""
    steps = tuple(parse_step(s, flag) for s in specs)
    return Perturbation(steps, seed) if steps else None


def add_flags(parser: Any) -> None:
    """``--perturb NAME:PARAM=V,...`` (repeatable) and ``--perturb-seed N`` on a command."""
    parser.add_argument(
        "--perturb", action="append", default=[], metavar="NAME:PARAM=V,...",
        help="score under a perturbation (repeatable, applied in order): "
        + ", ".join(KINDS) + "; e.g. noise:snr=10,color=emg  dead:ch=3+17  rotate:k=2",
    )  # fmt: skip
    parser.add_argument("--perturb-seed", type=int, default=0, help="seed of the perturbations")
