"""A synthetic multi-user sEMG typing corpus, written in emg2qwerty's own file format.

Three models stacked, each simple and each grounded in how the real signal arises:

* typing: prompts from an embedded English text, typed key by key with a user's own
  rhythm (log-normal inter-key intervals), shift held for capitals and symbols, typos
  on a neighbouring key corrected with backspace, and enter at the end of each prompt;
* muscles: every key is pressed by one finger of one hand in a direction (row reached
  up or down, column reached in or out), which recruits that finger's flexor or
  extensor and the wrist deviators, with co-activation of the neighbouring fingers;
  activation envelopes rise before the press, hold while the key is down and decay
  after release, so fast consecutive keys overlap (carry-over);
* sensor: each muscle drives band-limited motor-unit-like noise (20-450 Hz, with a
  per-user spectral peak) whose amplitude follows its activation, projected onto the 16
  electrodes of its wrist's band through a per-user spatial mixing (the band's rotation
  on the forearm, electrode gains), re-donned each session (small extra shifts), plus
  powerline hum and amplifier noise, sampled at 2 kHz. Sessions longer than 33 s build
  each noise from a 33 s bank drawn for the session, cut at random offsets and joined by
  equal-power cross-fades, so a session of emg2qwerty's length (18 minutes) takes seconds.

Users differ in rhythm, muscle recruitment, band placement and spectrum, so a decoder
trained on some users transfers imperfectly to others, the effect the paper studies.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import string
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from tqdm.auto import tqdm

from semgkit.charset import CHARSET
from semgkit.format import ELECTRODES, EMG_FIELDS, GROUP, SAMPLE_RATE, TIME_FIELD, TIMESERIES

ASSET = Path(__file__).resolve().parent / "assets" / "prompts.txt"
MARKER = ".semgkit-corpus.json"
EMG_DTYPE = np.dtype([*((f, "<f4", (ELECTRODES,)) for f in EMG_FIELDS), (TIME_FIELD, "<f8")])
START_TIME = 1.6e9  # unix seconds of the first session: real files carry wall-clock times
FORMAT = 2  # bumped when the files change, so an older corpus on disk is rebuilt
METADATA_COLUMNS = (
    "session", "user", "condition", "duration_mins", "num_keystrokes", "num_prompts",
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """Corpus shape; users and sessions mirror emg2qwerty's generic/personal splits."""

    train_users: int
    train_sessions: int  # per training user, in the generic split's train part
    val_sessions: int  # per training user, in the generic split's val part
    personal_sessions: tuple[int, int, int] = (2, 1, 2)  # test users: train, val, test
    test_users: int = 8
    session_s: float = 30.0
    sample_rate: int = SAMPLE_RATE
    user_spread: float = 1.0  # scales every per-user difference (0: all users alike)
    noise_std: float = 0.05  # amplifier noise relative to a fully active muscle


CORPUS_PRESETS: dict[str, SynthConfig] = {
    "smoke": SynthConfig(
        train_users=4,
        train_sessions=1,
        val_sessions=1,
        personal_sessions=(1, 1, 1),
        test_users=2,
        session_s=12.0,
    ),
    "laptop": SynthConfig(train_users=24, train_sessions=2, val_sessions=1, session_s=30.0),
    # the release's layout (8 test users with personal splits) and session length (about
    # 18 minutes), with few training users: for scale tests of the data path, ~9 GB
    "release-shaped": SynthConfig(
        train_users=4,
        train_sessions=1,
        val_sessions=1,
        personal_sessions=(1, 1, 1),
        session_s=18 * 60.0,
    ),
}
# release-shaped at a length the paper-dryrun profile can score whole, every paper preset
# on 2 cores: 10 CPU-s per second of session (book/profiles/paper-dryrun.toml)
CORPUS_PRESETS["paper-dryrun"] = replace(CORPUS_PRESETS["release-shaped"], session_s=60.0)

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


def load_prompts() -> list[str]:
    lines = ASSET.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


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


def needs_shift(char: str) -> bool:
    return char in string.ascii_uppercase or char in UNSHIFT


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


def type_session(
    user: User, prompts: list[str], duration_s: float, rng: np.random.Generator
) -> tuple[list[dict], list[dict]]:
    """Keystrokes and prompts (emg2qwerty's JSON records, times relative to 0)."""
    keystrokes: list[dict] = []
    prompt_log: list[dict] = []
    t = 0.5
    end_by = duration_s - 1.0

    def press(char: str, t: float) -> float:
        hold = user.hold_s * float(np.exp(0.2 * rng.standard_normal()))
        if needs_shift(char):
            keystrokes.append({"key": "Key.shift", "start": t - 0.06, "end": t + hold + 0.03})
        key = CHARSET.char_to_key(char)
        keystrokes.append({"key": key, "start": t, "end": t + hold})
        return t + user.iki_s * float(np.exp(user.iki_sigma * rng.standard_normal()))

    while t < end_by:
        text = prompts[int(rng.integers(len(prompts)))]
        start = t
        for char in text:
            if t >= end_by:
                break
            if rng.random() < user.typo_rate and char.isalpha():
                t = press(_neighbour(char, rng), t)
                t = press("⌫", t + 0.15)
            t = press(char, t)
        else:
            t = press("⏎", t)
        prompt_log.append(
            {"name": "text_prompt", "start": start - 0.3, "end": t, "payload": {"text": text}}
        )
        t += float(rng.uniform(0.8, 1.6))
    keystrokes.sort(key=lambda k: k["start"])
    return keystrokes, prompt_log


def _neighbour(char: str, rng: np.random.Generator) -> str:
    row = next(r for r in ROWS[1:] if char.lower() in r)
    col = row.index(char.lower())
    options = [row[c] for c in (col - 1, col + 1) if 0 <= c < len(row) and row[c].isalpha()]
    return str(rng.choice(options)) if options else char.lower()


def session_signal(
    user: User,
    keystrokes: list[dict],
    duration_s: float,
    config: SynthConfig,
    rng: np.random.Generator,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(T, 2, 16) float32 sEMG for one session of typing (vectorised over time, in float32,
    so an 18-minute session takes seconds). ``out``, a (T, 32) float32 array, receives the
    signal: a corpus reuses one, as a fresh array per session costs 0.5 s of page faults."""
    fs = config.sample_rate
    n = int(round(duration_s * fs))
    env_fs = 200
    te = np.arange(int(duration_s * env_fs) + 1) / env_fs
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
    act += 0.03  # resting tone
    act = act.reshape(len(te), -1).T  # channels first: every step below is a row operation
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
    white = config.noise_std * rng.standard_normal((min(n, BANK), 32)).astype(np.float32)
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


def write_session(path: Path, emg: np.ndarray, times: np.ndarray, attrs: dict[str, Any]) -> None:
    """One emg2qwerty HDF5 session (uncompressed and contiguous, as the release's files are
    sized), written to a temporary name and renamed. Records are assembled a block at a
    time into a reused buffer: a whole session's records would cost a fresh 300 MB array."""
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        group = f.create_group(GROUP)
        dataset = group.create_dataset(TIMESERIES, shape=(len(emg),), dtype=EMG_DTYPE)
        records = np.empty(min(len(emg), BLOCK), dtype=EMG_DTYPE)
        for lo in range(0, len(emg), BLOCK):
            part = records[: min(BLOCK, len(emg) - lo)]
            for band, field in enumerate(EMG_FIELDS):
                part[field] = emg[lo : lo + len(part), band]
            part[TIME_FIELD] = times[lo : lo + len(part)]
            dataset.write_direct(part, dest_sel=np.s_[lo : lo + len(part)])
        for key, value in attrs.items():
            group.attrs[key] = value
    tmp.replace(path)


def user_ids(n: int, seed: int) -> list[str]:
    """n distinct 8-digit ids like the release's, ascending so user order follows the index."""
    rng = np.random.default_rng([seed, 2**31 - 1])  # a stream no user or session draws from
    return [str(i) for i in sorted(10**7 + rng.choice(9 * 10**7, size=n, replace=False))]


def session_name(user: str, t0: float) -> str:
    """The release's older naming: recording date, unix start time, user id."""
    return f"{time.strftime('%Y-%m-%d', time.gmtime(t0))}-{int(t0)}-keystrokes-{user}"


def _plan(config: SynthConfig, seed: int) -> list[tuple[int, str, int, str]]:
    """(user index, user id, session index, role) for every session of the corpus."""
    ids = user_ids(config.train_users + config.test_users, seed)
    plan = []
    for u in range(config.train_users):
        roles = ["train"] * config.train_sessions + ["val"] * config.val_sessions
        plan += [(u, ids[u], s, r) for s, r in enumerate(roles)]
    n_train, n_val, n_test = config.personal_sessions
    for i in range(config.test_users):
        u = config.train_users + i
        roles = ["ptrain"] * n_train + ["pval"] * n_val + ["test"] * n_test
        plan += [(u, ids[u], s, r) for s, r in enumerate(roles)]
    return plan


def generate(
    out_dir: str | Path,
    preset: str | SynthConfig = "laptop",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a corpus to ``out_dir``; a finished corpus of the same recipe is reused.

    The corpus is built in a temporary sibling folder and renamed into place, so an
    interrupted run never leaves a half corpus behind. ``out_dir`` may be replaced only
    if it is empty, an older semgkit corpus, or ``overwrite`` is true.
    """
    if isinstance(preset, str) and preset not in CORPUS_PRESETS:
        raise ValueError(f"unknown corpus preset {preset!r}; known: {sorted(CORPUS_PRESETS)}")
    config = CORPUS_PRESETS[preset] if isinstance(preset, str) else preset
    out = Path(out_dir)
    # through JSON, so it compares equal to the marker read back (tuples become lists)
    recipe = json.loads(json.dumps({"config": asdict(config), "seed": int(seed), "format": FORMAT}))
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == recipe:
        return out
    if out.exists() and any(out.iterdir()) and not marker.is_file() and not overwrite:
        raise FileExistsError(
            f"{out} is not empty and is not a semgkit corpus; pass --overwrite to replace it"
        )
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _write_corpus(tmp, config, int(seed), progress)
    (tmp / MARKER).write_text(json.dumps(recipe, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _write_corpus(root: Path, config: SynthConfig, seed: int, progress: bool) -> None:
    prompts = load_prompts()
    plan = _plan(config, seed)
    users = {
        name: make_user(name, np.random.default_rng([seed, u]), config.user_spread)
        for u, name, _, _ in plan
    }
    rows, roles = [], {}
    signal = np.empty((int(round(config.session_s * config.sample_rate)), 32), np.float32)
    for u, name, s, role in tqdm(plan, desc="synth sessions", disable=not progress):
        rng = np.random.default_rng([seed, u, s + 1])
        t0 = START_TIME + 3600.0 * (u * 16 + s)
        session = session_name(name, t0)
        keystrokes, prompt_log = type_session(users[name], prompts, config.session_s, rng)
        emg = session_signal(users[name], keystrokes, config.session_s, config, rng, signal)
        times = t0 + np.arange(len(emg)) / config.sample_rate
        for record in (*keystrokes, *prompt_log):
            record["start"] = round(record["start"] + t0, 4)
            record["end"] = round(record["end"] + t0, 4)
        attrs = {
            "session_name": session,
            "user": name,
            "condition": "on_keyboard",
            "duration_mins": config.session_s / 60.0,
            "keystrokes": json.dumps(keystrokes),
            "prompts": json.dumps(prompt_log),
        }
        write_session(root / f"{session}.hdf5", emg, times, attrs)
        minutes = config.session_s / 60
        rows.append([session, name, "on_keyboard", minutes, len(keystrokes), len(prompt_log)])
        roles[(name, session)] = role
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(METADATA_COLUMNS)
        writer.writerows(rows)
    _write_splits(root, roles, config)


def _write_splits(root: Path, roles: dict[tuple[str, str], str], config: SynthConfig) -> None:
    """generic.yaml and user0..userN.yaml, as in emg2qwerty's config/user: a Hydra header, a
    top-level ``user`` label (``generic``, ``user0``...), sessions listed by numeric user id."""
    (root / "splits").mkdir()

    def write(name: str, spec: dict) -> None:
        text = "# @package _global_\n" + yaml.safe_dump(spec, sort_keys=False)
        (root / "splits" / f"{name}.yaml").write_text(text)

    def entries(keep) -> list[dict[str, str]]:
        return [{"user": u, "session": s} for (u, s), r in roles.items() if keep(u, r)]

    generic = {
        "user": "generic",
        "dataset": {
            "train": entries(lambda u, r: r == "train"),
            "val": entries(lambda u, r: r == "val"),
            "test": entries(lambda u, r: r == "test"),
        },
    }
    write("generic", generic)
    test_users = sorted({u for (u, _), r in roles.items() if r == "test"})
    for i, user in enumerate(test_users):
        personal = {
            "user": f"user{i}",
            "dataset": {
                part: entries(lambda u, r, role=role, user=user: u == user and r == role)
                for part, role in (("train", "ptrain"), ("val", "pval"), ("test", "test"))
            },
        }
        write(f"user{i}", personal)


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "synth", help="write the synthetic sEMG typing corpus (emg2qwerty format)"
    )
    p.add_argument("--out", required=True, type=Path, help="corpus directory to write")
    p.add_argument("--preset", default="laptop", help=f"corpus preset: {sorted(CORPUS_PRESETS)}")
    p.add_argument("--profile", dest="old_preset", help="deprecated alias of --preset")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument(
        "--session-minutes", type=float, help="length of every session (default: the preset's)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-corpus directory")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    flag, preset = "--preset", args.preset
    if args.old_preset is not None:  # "profile" names a book profile everywhere else
        print("semgkit synth: --profile is deprecated, use --preset", file=sys.stderr)
        flag, preset = "--profile", args.old_preset
    if preset not in CORPUS_PRESETS:
        raise ValueError(f"{flag} {preset!r}: choose from {sorted(CORPUS_PRESETS)}")
    config = CORPUS_PRESETS[preset]
    if args.session_minutes is not None:
        if not 0.1 <= args.session_minutes <= 24 * 60:
            raise ValueError(f"--session-minutes {args.session_minutes}: need 0.1 to 1440")
        config = replace(config, session_s=60.0 * args.session_minutes)
    out = generate(args.out, config, args.seed, overwrite=args.overwrite)
    print(out)
    return 0
