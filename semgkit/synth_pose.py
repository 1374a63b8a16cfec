"""A synthetic hand-pose corpus in emg2pose's format, built on the synthetic typing corpus.

The typing corpus (:mod:`semgkit.synth`, :mod:`semgkit.synth_signal`) already simulates
each hand's finger flexors and extensors and the wrist deviators while a user types. Here
each recording of that typing gives two stage files, one per wrist, as emg2pose records
them: that band's 16 electrodes, and 20 joint angles of that hand that follow its muscles'
activity. A finger's net flexion drive (flexor minus part of its extensor, smoothed as a
limb smooths muscle force) bends its three flexion joints, and the deviators set its
abduction; each user has their own rest pose and joint gains on top of their own muscle
recruitment, band placement and spectrum, so models transfer imperfectly across users.
Short spans with every angle zero stand for motion-capture (IK) failures.

Users are split as emg2pose holds users out: training users give train and val stages;
held-out users' stages are test (``generalization`` = ``user``), and a personal split per
held-out user (``splits/user<i>.yaml``) lends some of their stages to fine-tuning.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml
from tqdm.auto import tqdm

from semgkit.atomic import atomic_path
from semgkit.format import ELECTRODES, SAMPLE_RATE
from semgkit.pose_format import (
    ATTRS,
    EMG,
    GROUP,
    JOINT_ANGLES,
    METADATA_COLUMNS,
    NUM_JOINTS,
    SIDES,
    TIME,
    TIMESERIES,
)
from semgkit.synth import START_TIME, build_corpus, user_ids
from semgkit.synth_signal import ENV_FS, make_user, muscle_activation, session_signal
from semgkit.typist import load_prompts, type_session

FORMAT = 1  # bumped when the files change, so an older corpus on disk is rebuilt
STAGE = "SyntheticTyping"
POSE_DTYPE = np.dtype(
    [(TIME, "<f8"), (JOINT_ANGLES, "<f8", (NUM_JOINTS,)), (EMG, "<f4", (ELECTRODES,))]
)
# Per joint (in pose_format.JOINTS order): rest angle (rad), gain on its finger's drive
# (flexion joints) or on the deviators' difference (abduction joints).
REST = np.array([0.3, 0.4, 0.3, 0.2] + [0.0, 0.35, 0.5, 0.3] * 4)
GAIN = np.array([0.5, 0.3, 0.6, 0.5] + [0.15, 0.9, 1.0, 0.6] * 4)
ABDUCTION = [1] + [4 * k for k in range(1, 5)]  # thumb CMC_AA and each finger's MCP_AA
SMOOTH_S = 0.06  # time constant from muscle activity to joint movement


@dataclass(frozen=True)
class PoseSynthConfig:
    train_users: int
    recordings: tuple[int, int] = (2, 1)  # per training user: train, val
    personal: tuple[int, int] = (1, 1)  # per held-out user: fine-tuning, test
    test_users: int = 4
    stage_s: float = 20.0
    user_spread: float = 1.0
    noise_std: float = 0.05
    ik_failures_per_min: float = 3.0


POSE_PRESETS = {
    "smoke": PoseSynthConfig(train_users=3, recordings=(1, 1), test_users=2, stage_s=8.0),
    "laptop": PoseSynthConfig(train_users=12, stage_s=20.0),
}


def hand_angles(act: np.ndarray, rest: np.ndarray, gain: np.ndarray, n: int) -> np.ndarray:
    """(n, 20) float64 angles at 2 kHz of one hand from its (frames, 12) muscle activation
    at ``ENV_FS`` (``synth_signal``: flexor 2f and extensor 2f + 1 of finger f, 0 = pinky
    .. 4 = thumb; 10 radial, 11 ulnar deviator)."""
    drive = act[:, 0:10:2] - 0.6 * act[:, 1:10:2]  # (frames, 5) net flexion, pinky..thumb
    drive = drive[:, ::-1]  # thumb..pinky, emg2pose's finger order
    spread = act[:, 10] - act[:, 11]
    alpha = 1.0 - np.exp(-1.0 / (SMOOTH_S * ENV_FS))
    smooth = np.empty_like(drive)
    state = drive[0]
    for i, row in enumerate(drive):  # a first-order low-pass: limbs smooth muscle force
        state = state + alpha * (row - state)
        smooth[i] = state
    per_joint = np.repeat(smooth, 4, axis=1)  # each finger's four joints
    per_joint[:, ABDUCTION] = spread[:, None]
    angles = rest + gain * per_joint
    t = np.arange(n) / SAMPLE_RATE
    frames = np.arange(len(act)) / ENV_FS
    return np.stack([np.interp(t, frames, angles[:, j]) for j in range(NUM_JOINTS)], 1)


def ik_failures(angles: np.ndarray, per_min: float, rng: np.random.Generator) -> None:
    """Zero every angle over a few short spans, as motion capture loses the hand."""
    n = len(angles)
    for _ in range(rng.poisson(per_min * n / SAMPLE_RATE / 60)):
        start, length = int(rng.integers(0, n)), int(rng.uniform(0.05, 0.6) * SAMPLE_RATE)
        angles[start : start + length] = 0.0


def write_stage(path: Path, emg: np.ndarray, angles: np.ndarray, t0: float, attrs: dict) -> None:
    """One stage file in emg2pose's layout (the compound dataset assigned whole, so it is
    contiguous like the release's), written under a temporary name and renamed."""
    records = np.empty(len(emg), dtype=POSE_DTYPE)
    records[TIME] = t0 + np.arange(len(emg)) / SAMPLE_RATE
    records[JOINT_ANGLES] = angles
    records[EMG] = emg
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group(GROUP)
        group[TIMESERIES] = records
        group.attrs.update({k: attrs[k] for k in ATTRS})


def _plan(config: PoseSynthConfig) -> list[tuple[int, int, str]]:
    """(user index, recording index, role) of every recording; recording indices are
    unique across the corpus (they name sessions and seed their draws)."""
    plan = []
    for u in range(config.train_users + config.test_users):
        if u < config.train_users:
            roles = ["train"] * config.recordings[0] + ["val"] * config.recordings[1]
        else:
            roles = ["ptrain"] * config.personal[0] + ["test"] * config.personal[1]
        plan += [(u, role) for role in roles]
    return [(u, r, role) for r, (u, role) in enumerate(plan)]


def generate_pose(
    out_dir: str | Path,
    preset: str | PoseSynthConfig = "laptop",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a pose corpus to ``out_dir`` (reused when the recipe matches; built aside and
    renamed into place, as :func:`semgkit.synth.generate` does)."""
    if isinstance(preset, str) and preset not in POSE_PRESETS:
        raise ValueError(f"unknown pose corpus preset {preset!r}; known: {sorted(POSE_PRESETS)}")
    config = POSE_PRESETS[preset] if isinstance(preset, str) else preset
    recipe = {"pose_config": asdict(config), "seed": int(seed), "format": FORMAT}
    return build_corpus(out_dir, recipe, overwrite, lambda tmp: _write(tmp, config, seed, progress))


def _write(root: Path, config: PoseSynthConfig, seed: int, progress: bool) -> None:
    prompts = load_prompts()
    n_users = config.train_users + config.test_users
    ids = user_ids(n_users, seed)
    users, hands = [], []
    for u in range(n_users):
        rng = np.random.default_rng([seed, u])
        users.append(make_user(ids[u], rng, config.user_spread))
        s = config.user_spread
        rest = REST + s * 0.08 * rng.standard_normal((2, NUM_JOINTS))
        gain = GAIN * np.exp(s * 0.2 * rng.standard_normal((2, NUM_JOINTS)))
        hands.append((rest, gain))
    n = int(round(config.stage_s * SAMPLE_RATE))
    rows, parts = [], {}
    for u, r, role in tqdm(_plan(config), desc="synth pose stages", disable=not progress):
        rng = np.random.default_rng([seed, u, r + 1, 7])
        user, (rest, gain) = users[u], hands[u]
        keystrokes, _ = type_session(user, prompts, config.stage_s, rng)
        emg = session_signal(
            user,
            keystrokes,
            config.stage_s,
            rng,
            sample_rate=SAMPLE_RATE,
            noise_std=config.noise_std,
        )
        act = muscle_activation(user, keystrokes, config.stage_s)
        t0 = START_TIME + 3600.0 * r
        session = f"synthetic-{ids[u]}-recording-{r}"
        for band, side in enumerate(SIDES):
            angles = hand_angles(act[:, band], rest[band], gain[band], n)
            ik_failures(angles, config.ik_failures_per_min, rng)
            filename = f"{session}_{side}"
            attrs = {
                "filename": filename,
                "session": session,
                "stage": STAGE,
                "user": ids[u],
                "side": side,
                "sample_rate": float(SAMPLE_RATE),
                "num_channels": np.int64(16),
                "start": t0,
                "end": t0 + config.stage_s,
            }
            write_stage(root / f"{filename}.hdf5", emg[:, band], angles, t0, attrs)
            held_out = u >= config.train_users
            split = {"train": "train", "val": "val"}.get(role, "test")
            rows.append(
                {
                    **attrs,
                    "moving_hand": "both",
                    "held_out_user": held_out,
                    "held_out_stage": False,
                    "split": split,
                    "generalization": "user" if held_out else "",
                }
            )
            parts.setdefault((ids[u], role), []).append(filename)
    with (root / "metadata.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, METADATA_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    _write_splits(root, parts, ids[config.train_users :])


def _write_splits(root: Path, parts: dict, held_out: list[str]) -> None:
    """``generic.yaml`` (training users' train/val, held-out users' test stages) and one
    ``user<i>.yaml`` per held-out user, in emg2pose's data_split layout."""
    (root / "splits").mkdir()

    def names(role: str, users=None) -> list[str]:
        return [
            f
            for (u, r), fs in parts.items()
            if r == role and (users is None or u in users)
            for f in fs
        ]

    def write(name: str, spec: dict) -> None:
        (root / "splits" / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))

    write("generic", {"train": names("train"), "val": names("val"), "test": names("test")})
    for i, user in enumerate(held_out):
        write(
            f"user{i}", {"train": names("ptrain", {user}), "val": [], "test": names("test", {user})}
        )
