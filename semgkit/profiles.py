"""Book profiles: plain TOML files (``book/profiles/<name>.toml``) read into dicts.

A profile fixes everything a chapter needs to know about scale: the corpus, window
lengths, training budgets, the model ladder and the distillation sweep. The book's
chapters receive only the profile's name as a papermill parameter.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

SEARCH_DIRS = (Path("profiles"), Path("book/profiles"))
REQUIRED_SECTIONS = ("corpus", "window", "train", "scaling", "distill", "realtime")


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


def load_profile(name_or_path: str | Path, data_dir: str | Path | None = None) -> dict[str, Any]:
    """Read a profile; ``data_dir`` overrides ``corpus.path`` (the real-data location)."""
    path = find_profile(name_or_path)
    with path.open("rb") as f:
        profile = tomllib.load(f)
    missing = [s for s in REQUIRED_SECTIONS if s not in profile]
    if missing:
        raise ValueError(f"profile {path}: missing section(s) {missing}")
    profile.setdefault("name", path.stem)
    if data_dir:
        profile["corpus"]["path"] = str(data_dir)
    return profile


def corpus_dir(profile: dict[str, Any], build_dir: str | Path) -> Path:
    """Where the profile's corpus lives: ``corpus.path`` or ``<build>/data/<preset>``."""
    given = profile["corpus"].get("path") or ""
    if given:
        return Path(given).expanduser()
    return Path(build_dir) / "data" / f"{profile['corpus']['preset']}-seed{profile.get('seed', 0)}"
