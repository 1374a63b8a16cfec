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

from semgkit.format import CHANNELS, ELECTRODES
from semgkit.perturb_steps import Context, Dead, Drift, Hum, Jitter, Noise, Rotate, Shift
from semgkit.sensors import Mirror, Sparse

BLOCK = 8192  # samples a session is perturbed in (4 s): memory per cached block, ~1 MB


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
        """As a training transform (``windows.Transform``): a fresh seed from ``rng``."""
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
        "--perturb",
        action="append",
        default=[],
        metavar="NAME:PARAM=V,...",
        help="score under a perturbation (repeatable, applied in order): "
        + ", ".join(KINDS)
        + "; e.g. noise:snr=10,color=emg  dead:ch=3+17  rotate:k=2",
    )
    parser.add_argument("--perturb-seed", type=int, default=0, help="seed of the perturbations")
