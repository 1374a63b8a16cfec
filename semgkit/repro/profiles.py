"""Book profiles: TOML files (``book/profiles/<name>.toml``) read into a typed `Profile`.

A profile fixes everything a chapter needs to know about scale: the corpus, window
lengths, training budgets, the model ladder and the distillation sweep. The book's
chapters receive only the profile's name as a papermill parameter; `notebook.start`
loads it once. Defaults live here, a run's in `semgkit.runs.TrainConfig` (the [train]
table names only what it changes); an unknown or missing key is an error naming the file
and the key. A profile may start from another one (``extends = "laptop"``) and change
only the keys it names.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semgkit.runs import TrainConfig

SEARCH_DIRS = (Path("profiles"), Path("book/profiles"))


@dataclass(frozen=True)
class Corpus:
    source: str = "synthetic"  # "synthetic" (semgkit.synth) or "emg2qwerty" (real data)
    preset: str = "laptop"  # semgkit.synth.CORPUS_PRESETS name
    path: str = ""  # empty: <build>/data/<preset>-seed<seed>
    split: str = "generic"  # the split every chapter trains, validates and tests on
    setting: str = "cross-user"  # "cross-user": tested on unseen users; "single-user": on
    # the training user's own held-out sessions (emg2qwerty's personalized from scratch)


SETTINGS = ("cross-user", "single-user")


@dataclass(frozen=True)
class Window:  # seconds
    window_s: float
    past_s: float
    future_s: float


@dataclass(frozen=True, kw_only=True)
class Train:
    """[train]: the run recipe's fields a profile sets, with :class:`TrainConfig`'s
    defaults (the one place they live), then how the book schedules its runs.

    :func:`semgkit.repro.recipes.train_config` turns a profile into a TrainConfig."""

    steps: int = TrainConfig.steps
    batch_size: int = TrainConfig.batch_size
    accumulate: int = TrainConfig.accumulate
    lr: float = TrainConfig.lr  # each preset's peak lr is `recipes.peak_lr`
    val_windows: int = TrainConfig.val_windows
    num_threads: int = TrainConfig.num_threads  # of each run
    num_workers: int = TrainConfig.num_workers
    lr_width_product: float = 0.0  # 0: every preset gets `lr` (see recipes.peak_lr)
    personalize_steps: int
    personalize_lr_fraction: float  # of the generic run's peak lr
    personalize_users: int = 0  # 0: every test user of the generic split
    jobs: int = 1  # runs trained at once, each in its own process (semgkit.repro.jobs)
    seeds: tuple[int, ...] = ()  # training seeds of every run; empty: (profile seed,)


@dataclass(frozen=True)
class Scaling:
    ladder: tuple[str, ...]
    baseline: str
    seeds: tuple[tuple[str, tuple[int, ...]], ...] = ()  # {preset = [seeds]}: overrides


@dataclass(frozen=True)
class Distill:
    teacher: str
    student: str
    temperature: float  # the headline run of Table 3
    alpha: float
    temperatures: tuple[float, ...]
    alphas: tuple[float, ...]
    seeds: tuple[int, ...] = ()  # of the student alone and the headline distilled student


@dataclass(frozen=True)
class Realtime:
    presets: tuple[str, ...]
    chunk_ms: float
    iterations: int
    # a ladder preset trained twice, GroupNorm over the window against a per-frame norm
    # (feat_norm "group" / "frame"), to price streaming in CER; "" leaves it out
    norm_preset: str = ""


@dataclass(frozen=True)
class Robustness:  # the robustness chapter: evaluations of runs trained for Tables 2 and 3
    # {"NAME:PARAM" = [severities]}: one stress curve per entry (semgkit.perturb specs)
    severities: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("dead:n", (4.0, 12.0)),
        ("noise:snr", (10.0, 0.0, -10.0)),
        ("rotate:k", (1.0, 2.0, 4.0)),
    )
    populations: tuple[str, ...] = ("wide-placement", "thick-skin", "fast-typists")
    population_users: int = 4  # held-out users drawn per population (synthetic corpora)
    # simulated other sensors (semgkit.sensors, any semgkit.perturb spec): the teacher and
    # the distilled student zero-shot and fine-tuned on the first sensor_users test users
    sensors: tuple[str, ...] = ("mirror", "sparse:n=8")
    sensor_users: int = 2
    # leave-users-out (semgkit.repro.leave_users_out): the teacher and the student alone trained
    # again on the first K training users of the split, for each K; empty: not trained
    user_counts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Pose:  # chapter 8, hand pose: its own corpus (emg2pose's format), runs and budgets
    source: str = "synthetic"  # "synthetic" (semgkit.synth_pose) or "emg2pose" (real data)
    preset: str = "smoke"  # semgkit.synth_pose.POSE_PRESETS name
    path: str = ""  # emg2pose data; empty: <build>/data/pose-<preset>-seed<seed>
    split: str = "generic"  # the generic split ("mini" on emg2pose's mini set)
    window_s: float = 1.0
    past_s: float = 0.0
    steps: int = 8
    batch_size: int = 8
    lr: float = 5e-3
    val_windows: int = 32
    ladder: tuple[str, ...] = ("lap-xxs", "lap-xs")  # the last, the largest, is the teacher
    student: str = "lap-student"
    alpha: float = 0.5  # the headline distilled student
    alphas: tuple[float, ...] = (0.5,)  # the mixing-weight sweep
    seeds: tuple[int, ...] = ()  # of every pose run; empty: (profile seed,)
    personalize_steps: int = 4
    personalize_users: int = 1  # 0: every held-out user with a personal split


TASKS = ("typing", "pose")


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    corpus: Corpus
    window: Window
    train: Train
    scaling: Scaling
    distill: Distill
    realtime: Realtime
    robustness: Robustness = Robustness()
    pose: Pose | None = None  # no [pose] section: the pose chapter is skipped
    tasks: tuple[str, ...] = ("typing",)  # whose chapters run (tools/book.py)
    seed: int = 0
    chapters: tuple[str, ...] = ()  # chapter prefixes the book runs ("03"); empty: all
    build_dir: Path = Path("build")  # where the book writes; set by notebook.start

    def corpus_dir(self) -> Path:
        """Where the corpus lives: ``corpus.path`` or ``<build>/data/<preset>-seed<seed>``."""
        if self.corpus.path:
            return Path(self.corpus.path).expanduser()
        return self.build_dir / "data" / f"{self.corpus.preset}-seed{self.seed}"

    def measure(self) -> str:
        """What the tables' CER columns measure: ``cross-user`` or ``single-user``."""
        return self.corpus.setting

    def paper_protocol(self) -> bool:
        """Whether the paper's numbers are comparable: its protocol (train on the generic
        split, test on its unseen users) on real emg2qwerty, or a synthetic stand-in of it."""
        return self.corpus.split == "generic" and self.corpus.setting == "cross-user"

    def seeds(self) -> tuple[int, ...]:
        """Training seeds of a run: ``train.seeds``, else the profile's one seed.

        The corpus and its splits always come from ``seed``; only training varies."""
        return self.train.seeds or (self.seed,)

    def model_seeds(self, preset: str) -> tuple[int, ...]:
        """Seeds of a scaling-ladder (or baseline, or teacher) run of ``preset``."""
        return dict(self.scaling.seeds).get(preset, self.seeds())

    def student_seeds(self) -> tuple[int, ...]:
        return self.distill.seeds or self.seeds()

    def pose_seeds(self) -> tuple[int, ...]:
        return (self.pose.seeds if self.pose else ()) or (self.seed,)


SECTION_TYPES = {
    "corpus": Corpus,
    "window": Window,
    "train": Train,
    "scaling": Scaling,
    "distill": Distill,
    "realtime": Realtime,
}


def find_profile(name_or_path: str | Path) -> Path:
    """A profile name (``laptop``) or a path to a TOML file -> the file's path."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.is_file():
            raise FileNotFoundError(f"profile file {path} does not exist")
        return path
    here = Path(__file__).resolve().parent.parent / "book" / "profiles"
    for folder in (*SEARCH_DIRS, here):
        candidate = folder / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    known = sorted({p.stem for d in (*SEARCH_DIRS, here) if d.is_dir() for p in d.glob("*.toml")})
    raise FileNotFoundError(f"no profile named {name_or_path!r}; known profiles: {known}")


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    """``cls(**raw)`` with lists as tuples and tables as sorted (key, tuple) pairs, so a
    profile stays hashable; unknown or missing keys named."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}")
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    missing = sorted(required - set(raw))
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")
    return cls(**{k: _frozen(v) for k, v in raw.items()})


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return tuple(value) if isinstance(value, list) else value


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The profile's TOML, over the profile it ``extends`` (sections merged key by key)."""
    with path.open("rb") as f:
        raw = tomllib.load(f)
    base_name = raw.pop("extends", None)
    if base_name is None:
        return raw
    base_path = find_profile(base_name)
    if base_path.resolve() in seen:
        raise ValueError(f"profile {path}: extends {base_name!r} in a circle")
    base = _read(base_path, (*seen, path.resolve()))
    base.pop("name", None)
    base.pop("description", None)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def load_profile(
    name_or_path: str | Path,
    data_dir: str | Path | None = None,
    build_dir: str | Path = "build",
    split: str | None = None,
) -> Profile:
    """Read a profile; ``data_dir`` overrides ``corpus.path`` (the real-data location), or
    ``pose.path`` in a profile whose only task is pose (``tasks = ["pose"]``); ``split``
    overrides ``corpus.split`` (``make book SPLIT=user3``).

    ``tasks`` defaults to typing, and pose too when the profile has a [pose] section."""
    path = find_profile(name_or_path)
    raw = _read(path)
    missing = [s for s in SECTION_TYPES if s not in raw]
    if missing:
        raise ValueError(f"profile {path}: missing section(s) {missing}")
    sections = {
        s: _build(cls, raw.pop(s), f"profile {path} [{s}]") for s, cls in SECTION_TYPES.items()
    }
    where = f"profile {path} [robustness]"
    sections["robustness"] = _build(Robustness, raw.pop("robustness", {}), where)
    if "pose" in raw:
        sections["pose"] = _build(Pose, raw.pop("pose"), f"profile {path} [pose]")
    raw.setdefault("tasks", ["typing"] + (["pose"] if "pose" in sections else []))
    _check_tasks(path, raw["tasks"], "pose" in sections)
    raw.setdefault("name", path.stem)
    raw.setdefault("description", "")
    profile = _build(Profile, {**raw, **sections}, f"profile {path}")
    trained = {*profile.scaling.ladder, profile.scaling.baseline, profile.distill.teacher}
    unknown = sorted(p for p, _ in profile.scaling.seeds if p not in trained)
    if unknown:
        raise ValueError(f"profile {path} [scaling] seeds: {unknown} are not trained here")
    counts = profile.robustness.user_counts
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in counts):
        raise ValueError(
            f"profile {path} [robustness] user_counts: {list(counts)} must be whole numbers >= 1"
        )
    if counts and profile.corpus.setting != "cross-user":
        raise ValueError(
            f"profile {path} [robustness] user_counts: needs the cross-user setting "
            f"(this profile's is {profile.corpus.setting!r}: one training user)"
        )
    if profile.corpus.setting not in SETTINGS:
        raise ValueError(
            f"profile {path} [corpus] setting: {profile.corpus.setting!r} is not one of {SETTINGS}"
        )
    empty = sorted(p for p, seeds in profile.scaling.seeds if not seeds)
    if empty:
        raise ValueError(f"profile {path} [scaling] seeds: {empty} have an empty list")
    if data_dir and profile.pose and "typing" not in profile.tasks:
        pose = dataclasses.replace(profile.pose, path=str(data_dir))
        profile = dataclasses.replace(profile, pose=pose)
    elif data_dir:
        profile = dataclasses.replace(
            profile, corpus=dataclasses.replace(profile.corpus, path=str(data_dir))
        )
    if split:
        profile = dataclasses.replace(
            profile, corpus=dataclasses.replace(profile.corpus, split=str(split))
        )
    return dataclasses.replace(profile, build_dir=Path(build_dir))


def _check_tasks(path: Path, tasks: Any, has_pose: bool) -> None:
    """``tasks``: a non-empty list drawn from :data:`TASKS`; pose needs a [pose] section."""
    if not isinstance(tasks, list) or not tasks or not set(tasks) <= set(TASKS):
        raise ValueError(f"profile {path}: tasks {tasks!r}: a non-empty list from {list(TASKS)}")
    if "pose" in tasks and not has_pose:
        raise ValueError(f"profile {path}: tasks include 'pose' but there is no [pose] section")
