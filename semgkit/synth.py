"""A synthetic multi-user sEMG typing corpus, written in emg2qwerty's own file format.

Three models stacked, each simple and each grounded in how the real signal arises:

* typing: prompts from an embedded English text, typed key by key with a user's own
  rhythm (log-normal inter-key intervals), shift held for capitals and symbols, typos
  on a neighbouring key corrected with backspace, and enter at the end of each prompt;
* muscles and sensor (`semgkit.synth_signal`): each key press recruits a finger's
  flexor or extensor and the wrist deviators, whose motor-unit-like noise reaches the 16
  electrodes of the wrist's band through a per-user mixing, plus powerline hum and
  amplifier noise, sampled at 2 kHz.

This module writes the sessions, metadata and splits and holds the corpus presets; the
typing is `semgkit.typist`, the `semgkit synth` command `semgkit.synth_cli`.

Users differ in rhythm, muscle recruitment, band placement and spectrum, so a decoder
trained on some users transfers imperfectly to others, the effect the paper studies.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml
from tqdm.auto import tqdm

from semgkit.atomic import atomic_path
from semgkit.format import ELECTRODES, EMG_FIELDS, GROUP, SAMPLE_RATE, TIME_FIELD, TIMESERIES
from semgkit.populations import Population, draw_ids
from semgkit.synth_signal import BLOCK, User, make_user, session_signal
from semgkit.typist import load_prompts, type_session

MARKER = ".semgkit-corpus.json"
PARTIAL = ".semgkit-partial"  # in a build under way: its folder may be cleared
EMG_DTYPE = np.dtype([*((f, "<f4", (ELECTRODES,)) for f in EMG_FIELDS), (TIME_FIELD, "<f8")])
START_TIME = 1.6e9  # unix seconds of the first session: real files carry wall-clock times
FORMAT = 2  # bumped when the files change, so an older corpus on disk is rebuilt
METADATA_COLUMNS = (
    "session",
    "user",
    "condition",
    "duration_mins",
    "num_keystrokes",
    "num_prompts",
)


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
    # held-out populations: their users only in splits/holdout-<name>.yaml's test part
    populations: tuple[Population, ...] = ()
    # write only the held-out users (their sessions, holdout splits with a test part only):
    # to score models trained on this recipe's corpus without writing it again
    populations_only: bool = False

    def __post_init__(self) -> None:
        names = [p.name for p in self.populations]
        if len(set(names)) != len(names):
            raise ValueError(f"populations {names}: each name once")
        if self.populations_only and not names:
            raise ValueError("populations_only: name at least one population")

    def recipe(self) -> dict[str, Any]:
        """The config as the corpus marker records it (no populations: as before they existed)."""
        fields = asdict(self)
        if not self.populations:
            del fields["populations"], fields["populations_only"]
        return fields


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
# One user's 18 sessions of about 18 minutes, split user0 16 train / 1 val / 1 test as
# emg2qwerty's single_user split (~5 GB): a stand-in for the single-user profile. The
# generic split's one training user is there because every corpus has one.
CORPUS_PRESETS["single-user"] = replace(
    CORPUS_PRESETS["release-shaped"], train_users=1, personal_sessions=(16, 1, 1), test_users=1
)
CORPUS_PRESETS["single-user-dryrun"] = replace(CORPUS_PRESETS["single-user"], session_s=60.0)
CORPUS_PRESETS["single-user-smoke"] = replace(
    CORPUS_PRESETS["single-user"], personal_sessions=(2, 1, 1), session_s=12.0
)


def write_session(path: Path, emg: np.ndarray, times: np.ndarray, attrs: dict[str, Any]) -> None:
    """One emg2qwerty HDF5 session (uncompressed and contiguous, as the release's files are
    sized), written to a temporary name and renamed. Records are assembled a block at a
    time into a reused buffer: a whole session's records would cost a fresh 300 MB array."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
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


def user_ids(n: int, seed: int) -> list[str]:
    """n distinct 8-digit ids like the release's, ascending so user order follows the index."""
    rng = np.random.default_rng([seed, 2**31 - 1])  # a stream no user or session draws from
    return [str(i) for i in sorted(10**7 + rng.choice(9 * 10**7, size=n, replace=False))]


def session_name(user: str, t0: float) -> str:
    """The release's older naming: recording date, unix start time, user id."""
    return f"{time.strftime('%Y-%m-%d', time.gmtime(t0))}-{int(t0)}-keystrokes-{user}"


def population_ids(config: SynthConfig, seed: int) -> list[list[str]]:
    """Each held-out population's user ids, distinct from the other users' (which stay as
    they were: the corpus without populations is unchanged)."""
    taken = set(user_ids(config.train_users + config.test_users, seed))
    return draw_ids(config.populations, taken, seed)


def _plan(config: SynthConfig, seed: int) -> list[tuple[int, str, int, str]]:
    """(user index, user id, session index, role) for every session of the corpus; a
    held-out population's sessions have role ``holdout-<name>``."""
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
    u = config.train_users + config.test_users
    for population, names in zip(config.populations, population_ids(config, seed), strict=True):
        for name in names:
            plan += [(u, name, s, f"holdout-{population.name}") for s in range(n_test)]
            u += 1
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
    if it is empty or holds nothing but a semgkit corpus (a run or notes kept inside one
    are not its files), or ``overwrite`` is true; otherwise the error names what is there.
    """
    if isinstance(preset, str) and preset not in CORPUS_PRESETS:
        raise ValueError(f"unknown corpus preset {preset!r}; known: {sorted(CORPUS_PRESETS)}")
    config = CORPUS_PRESETS[preset] if isinstance(preset, str) else preset
    recipe = {"config": config.recipe(), "seed": int(seed), "format": FORMAT}
    return build_corpus(
        out_dir, recipe, overwrite, lambda tmp: _write_corpus(tmp, config, int(seed), progress)
    )


def build_corpus(
    out_dir: str | Path, recipe: dict, overwrite: bool, write: Callable[[Path], None]
) -> Path:
    """``write(tmp)`` a corpus into a temporary sibling of ``out_dir`` and rename it into
    place, marked with ``recipe``; a finished corpus of the same recipe is reused, and
    ``out_dir`` is replaced only if empty, an older semgkit corpus, or ``overwrite``."""
    out = Path(out_dir)
    # through JSON, so it compares equal to the marker read back (tuples become lists)
    recipe = json.loads(json.dumps(recipe))
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == recipe:
        return out
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file")
    foreign = _not_written_by_synth(out) if out.exists() and not overwrite else []
    if foreign:
        shown = ", ".join(foreign[:4]) + (
            f" and {len(foreign) - 4} more" if len(foreign) > 4 else ""
        )
        what = "is not a semgkit corpus" if not marker.is_file() else "holds more than a corpus"
        raise FileExistsError(
            f"--out {out} {what}: it holds {shown}, which semgkit synth did not write; "
            "choose an empty or new directory (or pass --overwrite to delete them)"
        )
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():  # a build cut short, or something else of that name
        if tmp.is_dir() and ((tmp / PARTIAL).is_file() or not any(tmp.iterdir())):
            shutil.rmtree(tmp)
        else:
            raise FileExistsError(f"{tmp} is in the way and was not left by semgkit synth")
    tmp.mkdir(parents=True)
    (tmp / PARTIAL).touch()
    write(tmp)
    (tmp / PARTIAL).unlink()
    (tmp / MARKER).write_text(json.dumps(recipe, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _not_written_by_synth(out: Path) -> list[str]:
    """The entries of ``out`` a corpus written by :func:`generate` would not hold: all of
    them without a corpus marker; else anything but the marker, ``metadata.csv``, the
    sessions (or emg2pose stages) it lists and the split files ``splits/generic.yaml`` and
    ``user<N>.yaml``."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in out.iterdir())
    if not (out / MARKER).is_file():
        return names
    try:
        with (out / "metadata.csv").open(newline="") as f:
            # emg2pose names a stage's file in its own column; emg2qwerty by the session
            listed = {f"{row.get('filename') or row['session']}.hdf5" for row in csv.DictReader(f)}
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        listed = set()
    own = {MARKER, "metadata.csv", "splits/"} | listed
    splits = out / "splits"
    inside = sorted(p.name for p in splits.iterdir()) if splits.is_dir() else []
    return [n for n in names if n not in own] + [
        f"splits/{n}" for n in inside if not re.fullmatch(r"(generic|user\d+)\.yaml", n)
    ]


def _write_corpus(root: Path, config: SynthConfig, seed: int, progress: bool) -> None:
    prompts = load_prompts()
    plan = _plan(config, seed)
    users = {name: _user(config, seed, u, name, role) for u, name, _, role in plan}
    rows, roles = [], {}
    signal = np.empty((int(round(config.session_s * config.sample_rate)), 32), np.float32)
    if config.populations_only:
        plan = [step for step in plan if step[3].startswith("holdout-")]
    for u, name, s, role in tqdm(plan, desc="synth sessions", disable=not progress):
        rng = np.random.default_rng([seed, u, s + 1])
        t0 = START_TIME + 3600.0 * (u * 16 + s)
        session = session_name(name, t0)
        keystrokes, prompt_log = type_session(users[name], prompts, config.session_s, rng)
        emg = session_signal(
            users[name],
            keystrokes,
            config.session_s,
            rng,
            sample_rate=config.sample_rate,
            noise_std=config.noise_std,
            out=signal,
        )
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


def _user(config: SynthConfig, seed: int, u: int, name: str, role: str) -> User:
    """User ``u``, drawn as every user is, then moved into its population if held out."""
    user = make_user(name, np.random.default_rng([seed, u]), config.user_spread)
    for population in config.populations:
        if role == f"holdout-{population.name}":
            return population.user(user)
    return user


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
    test_users = sorted({u for (u, _), r in roles.items() if r == "test"})
    if not config.populations_only:
        write("generic", generic)
    for i, user in enumerate(test_users):
        personal = {
            "user": f"user{i}",
            "dataset": {
                part: entries(lambda u, r, role=role, user=user: u == user and r == role)
                for part, role in (("train", "ptrain"), ("val", "pval"), ("test", "test"))
            },
        }
        write(f"user{i}", personal)
    # train and val as generic (none with populations_only): no user of the population
    for population in config.populations:
        role = f"holdout-{population.name}"
        held_out = {**generic["dataset"], "test": entries(lambda u, r, role=role: r == role)}
        write(role, {"user": role, "dataset": held_out})
