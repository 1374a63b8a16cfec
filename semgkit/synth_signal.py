"""The signal half of the synthetic corpus: a typist's muscles and the band's electrodes.

Given the keystrokes `synth` typed, the signal is grounded in how the real one arises:

* muscles: every key is pressed by one finger of one hand in a direction (row reached
  up or down, column reached in or out), which recruits that finger's flexor or
  extensor and the wrist deviators, with co-activation of the neighbouring fingers;
  activation envelopes rise before the press, hold while the key is down and decay
  after release, so fast consecutive keys overlap (carry-over);
* sensor: each muscle drives band-limited motor-unit-like noise (20-450 Hz, with a
  per-user spectral peak) whose amplitude follows its activation, projected onto the 16
  electrodes of its wrist's band through a per-user spatial mixing (the band's rotation
  on the forearm, electrode gains), re-donned each session (small extra shifts), plus
  powerline hum and amplifier noise. Sessions longer than 33 s build each noise from a
  33 s bank drawn for the session, cut at random offsets and joined by equal-power
  cross-fades, so a session of emg2qwerty's length (18 minutes) takes seconds.

A `User` holds everything that makes one person's typing and signal their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semgkit.charset import CHARSET

# QWERTY geometry: (row, column offset) of each unshifted key, row 0 = number row.
ROWS = ["`1234567890-=", "qwertyuiop[]\\", "asdfghjkl;'", "zxcvbnm,./"]
SHIFTED = dict(zip("`1234567890-=[]\\;',./", '~!@#$%^&*()_+{}|:"<>?', strict=True))
UNSHIFT = {v: k for k, v in SHIFTED.items()}
HOME_ROW = 2
STAGGER = [0.0, 0.5, 0.75, 1.25]  # horizontal offset of each row, in key widths
# finger of each column on the home row layout: 0-4 left pinky..thumb, 5-9 right thumb..pinky
COLUMN_FINGER = [0, 0, 1, 2, 3, 3, 6, 6, 7, 8, 9, 9, 9, 9]
FINGER_HOME_X = {0: 0.75, 1: 1.75, 2: 2.75, 3: 3.75, 6: 6.75, 7: 7.75, 8: 8.75, 9: 9.75}
SPECIAL = {  # key -> (finger, row, x)
    "⌫": (9, 0, 13.5),
    "⏎": (9, 2, 12.5),
    " ": (5, 4, 5.5),
    "⇧": (0, 3, 0.0),  # left shift; the right one is mirrored in `key_activation`
}
MUSCLES_PER_HAND = 12  # flexor + extensor per finger (5), radial and ulnar deviators


def key_geometry(char: str) -> tuple[int, int, float]:
    """(finger 0-9, row, x) of the key that types ``char`` (shift not included)."""
    if char in SPECIAL:
        return SPECIAL[char]
    base = UNSHIFT.get(char, char.lower())
    for row, keys in enumerate(ROWS):
        col = keys.find(base)
        if col >= 0:
            return COLUMN_FINGER[min(col, 13)], row, col + STAGGER[row]
    raise ValueError(f"no key on the QWERTY layout types {char!r}")


def key_activation(char: str, right_shift: bool) -> np.ndarray:
    """(2, 12) muscle activation pattern of one key press: hand x muscle."""
    finger, row, x = key_geometry(char)
    if char == "⇧" and right_shift:
        finger, x = 9, 12.5
    hand, f = (0, finger) if finger < 5 else (1, 9 - finger)  # f: 0 pinky .. 4 thumb
    act = np.zeros((2, MUSCLES_PER_HAND))
    dy = HOME_ROW - row  # > 0: reach up (extension)
    act[hand, 2 * f] = 1.0 + 0.4 * max(-dy, 0)  # flexor presses the key
    act[hand, 2 * f + 1] = 0.25 + 0.45 * max(dy, 0)  # extensor lifts and reaches up
    for g in (f - 1, f + 1):  # neighbouring fingers co-activate
        if 0 <= g < 5:
            act[hand, 2 * g] += 0.25
    home = FINGER_HOME_X.get(finger, x)
    dx = (x - home) * (1 if hand == 0 else -1)  # > 0: towards the thumb side
    act[hand, 10 if dx > 0 else 11] += 0.5 * abs(dx)
    return act


def _envelope(t: np.ndarray, start: float, end: float) -> np.ndarray:
    """A press: onset burst peaking at the press, a hold, and a decaying tail."""
    rise = 1.0 / (1.0 + np.exp(-(t - start + 0.03) / 0.008))
    burst = np.exp(-0.5 * ((t - start) / 0.025) ** 2)
    tail = np.where(t > end, np.exp(-np.clip(t - end, 0, None) / 0.05), 1.0)
    return (0.45 * rise * tail + 0.8 * burst).astype(np.float32)


@dataclass
class User:
    """Everything that makes one person's signal their own."""

    name: str
    iki_s: float  # median inter-key interval
    iki_sigma: float
    hold_s: float
    typo_rate: float
    style: np.ndarray  # (2, 12) multiplicative recruitment of each muscle
    rotation: np.ndarray  # (2,) band rotation on the forearm, in electrodes
    gains: np.ndarray  # (2, 16) electrode gains
    peak_hz: float  # spectral signature of the user's motor units
    powerline_hz: float


def make_user(name: str, rng: np.random.Generator, spread: float) -> User:
    return User(
        name=name,
        iki_s=float(rng.uniform(0.16, 0.28)),
        iki_sigma=float(rng.uniform(0.25, 0.45)),
        hold_s=float(rng.uniform(0.07, 0.12)),
        typo_rate=float(rng.uniform(0.0, 0.04)),
        style=np.exp(spread * 0.3 * rng.standard_normal((2, MUSCLES_PER_HAND))),
        rotation=spread * rng.uniform(-1.5, 1.5, size=2),
        gains=np.exp(spread * 0.25 * rng.standard_normal((2, 16))),
        peak_hz=float(np.clip(120 + spread * 40 * rng.standard_normal(), 60, 250)),
        powerline_hz=float(rng.choice([50.0, 60.0])),
    )


# Muscles sit at fixed places around the forearm (in electrode units, 16 = a full turn):
# flexors on the palm side, extensors on the back, deviators at the edges.
MUSCLE_ANGLE = np.array([3.0, 11.0, 4.0, 12.0, 5.0, 13.0, 6.0, 14.0, 7.5, 15.0, 9.0, 1.0])
MUSCLE_WIDTH = np.array([1.6, 1.6, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.8, 1.8, 2.0, 2.0])


def mixing(rotation: float, gains: np.ndarray) -> np.ndarray:
    """(12, 16): how strongly each muscle reaches each electrode of a rotated band."""
    electrodes = np.arange(16)[None, :]
    d = (electrodes - MUSCLE_ANGLE[:, None] - rotation + 8) % 16 - 8  # circular distance
    return np.exp(-0.5 * (d / MUSCLE_WIDTH[:, None]) ** 2) * gains[None, :]


ENV_FS = 200  # Hz: the rate muscle activations are computed at


def muscle_activation(user: User, keystrokes: list[dict], duration_s: float) -> np.ndarray:
    """(frames, 2, 12) float32 activation of each hand's muscles at ``ENV_FS``, frame i at
    time ``i / ENV_FS``, resting tone included: what drives the signal (and the synthetic
    hand's joint angles, :mod:`semgkit.synth_pose`)."""
    te = np.arange(int(duration_s * ENV_FS) + 1) / ENV_FS
    act = np.zeros((len(te), 2, MUSCLES_PER_HAND), dtype=np.float32)
    for i, k in enumerate(keystrokes):
        char = CHARSET.key_to_char(k["key"])
        if char is None:
            continue
        # touch typists hold the shift of the other hand than the key it modifies
        after = keystrokes[i + 1]["key"] if i + 1 < len(keystrokes) else "a"
        right_shift = key_geometry(CHARSET.key_to_char(after) or "a")[0] < 5
        lo, hi = np.searchsorted(te, [k["start"] - 0.1, k["end"] + 0.35])
        pattern = key_activation(char, right_shift) * user.style
        env = _envelope(te[lo:hi], k["start"], k["end"])
        act[lo:hi] += env[:, None, None] * pattern[None].astype(np.float32)
    return act + 0.03  # resting tone


def session_signal(
    user: User,
    keystrokes: list[dict],
    duration_s: float,
    rng: np.random.Generator,
    *,
    sample_rate: int,
    noise_std: float,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(T, 2, 16) float32 sEMG for one session of typing (vectorised over time, in float32,
    so an 18-minute session takes seconds). ``out``, a (T, 32) float32 array, receives the
    signal: a corpus reuses one, as a fresh array per session costs 0.5 s of page faults.
    ``noise_std`` is the amplifier noise relative to a fully active muscle."""
    fs, env_fs = sample_rate, ENV_FS
    n = int(round(duration_s * fs))
    act = muscle_activation(user, keystrokes, duration_s)
    act = act.reshape(len(act), -1).T  # channels first: every step below is a row operation
    muscles = _motor_unit_noise(n, 2 * MUSCLES_PER_HAND, fs, user.peak_hz, rng)
    mix = np.zeros((32, 2 * MUSCLES_PER_HAND), dtype=np.float32)  # electrode <- muscle
    for band in range(2):
        shift = rng.normal(0.0, 0.3)  # re-donning moves the band a little each session
        gains = user.gains[band] * np.exp(0.05 * rng.standard_normal(16))
        mix[
            16 * band : 16 * (band + 1), MUSCLES_PER_HAND * band : MUSCLES_PER_HAND * (band + 1)
        ] = mixing(user.rotation[band] + shift, gains).T
    hum_level, hum_phase = rng.uniform(0.005, 0.03), rng.uniform(0, 6)
    hum_gain = (hum_level * rng.uniform(0.5, 1.5, size=32)).astype(np.float32)
    white = noise_std * rng.standard_normal((min(n, BANK), 32)).astype(np.float32)
    amplifier = _Noise(np.ascontiguousarray(white.T), n, rng)
    emg = np.empty((n, 32), dtype=np.float32) if out is None else out
    if emg.shape != (n, 32) or emg.dtype != np.float32:
        raise ValueError(f"out: a ({n}, 32) float32 array expected, got {emg.shape} {emg.dtype}")
    for lo in range(0, n, BLOCK):  # blocks that stay in cache, not arrays of the session
        hi = min(lo + BLOCK, n)
        sources = _upsample(act, fs // env_fs, lo, hi) * muscles.read(lo, hi)
        np.matmul(sources.T, mix.T, out=emg[lo:hi])
        hum = np.sin(2 * np.pi * user.powerline_hz * np.arange(lo, hi) / fs + hum_phase)
        emg[lo:hi] += hum.astype(np.float32)[:, None] * hum_gain
        emg[lo:hi] += amplifier.read(lo, hi).T
    return emg.reshape(n, 2, 16)


def _upsample(x: np.ndarray, ratio: int, lo: int, hi: int) -> np.ndarray:
    """Samples ``lo:hi`` of rows ``x`` linearly interpolated onto a grid ``ratio`` times
    finer (``np.interp``'s result, in float32), the last value held past the end."""
    first, last = lo // ratio, -(-hi // ratio)
    part = x[:, first : last + 1]
    part = np.concatenate([part, part[:, -1:].repeat(last + 1 - first - part.shape[1], 1)], 1)
    frac = np.arange(ratio, dtype=np.float32) / ratio
    out = part[:, :-1, None] + (part[:, 1:] - part[:, :-1])[:, :, None] * frac
    return out.reshape(len(x), -1)[:, lo - first * ratio : hi - first * ratio]


BANK = 1 << 16  # samples of noise drawn per session and channel; longer noise reuses them
SEGMENT, FADE = 1 << 11, 1 << 7  # pieces of the bank and the cross-fade between them
BLOCK = 16 * SEGMENT  # samples generated at a time


class _Noise:
    """``n`` samples of each row of ``bank`` (a stationary noise), made of pieces of it taken
    at random offsets and joined by equal-power cross-fades, which keep the variance and the
    spectrum: a long session without drawing and filtering all of its noise."""

    def __init__(self, bank: np.ndarray, n: int, rng: np.random.Generator) -> None:
        self.bank, self.starts = bank, None
        if n > bank.shape[1]:
            count = -(-n // SEGMENT)
            self.starts = rng.integers(0, bank.shape[1] - SEGMENT - FADE, size=(len(bank), count))

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo:hi``; ``lo`` is a multiple of ``SEGMENT``."""
        if self.starts is None:
            return self.bank[:, lo:hi]
        first, last = lo // SEGMENT, -(-hi // SEGMENT)
        rows = np.arange(len(self.bank))[:, None]
        windows = np.lib.stride_tricks.sliding_window_view(self.bank, SEGMENT, axis=1)
        pieces = windows[rows, self.starts[:, first:last]]  # (channels, pieces, SEGMENT)
        fades = np.lib.stride_tricks.sliding_window_view(self.bank, FADE, axis=1)
        skip = 1 if first == 0 else 0  # the session's first piece fades in from nothing
        tails = fades[rows, self.starts[:, first + skip - 1 : last - 1] + SEGMENT]
        ramp = np.sin(0.5 * np.pi * (np.arange(FADE) + 0.5) / FADE).astype(np.float32)
        pieces[:, skip:, :FADE] *= ramp
        pieces[:, skip:, :FADE] += tails * ramp[::-1]
        return pieces.reshape(len(self.bank), -1)[:, : hi - lo]


def _motor_unit_noise(
    n: int, channels: int, fs: int, peak_hz: float, rng: np.random.Generator
) -> _Noise:
    """Unit-variance noise shaped like a surface EMG spectrum: 20-450 Hz, peak at peak_hz."""
    m = min(n, BANK)
    white = rng.standard_normal((m, channels)).astype(np.float32)  # drawn as before banks
    freqs = np.fft.rfftfreq(m, 1.0 / fs)
    f = np.clip(freqs, 1e-3, None)
    shape = (f / peak_hz) ** 2 / (1 + (f / peak_hz) ** 4)  # a resonance around peak_hz
    shape *= (freqs > 20) & (freqs < 450)
    spectrum = np.fft.rfft(white, axis=0) * np.sqrt(shape)[:, None]
    bank = np.fft.irfft(spectrum, n=m, axis=0).astype(np.float32)
    bank = np.ascontiguousarray((bank / bank.std(axis=0, keepdims=True).clip(1e-8)).T)
    return _Noise(bank, n, rng)
