"""The split files shipped in ``data_download/splits/``, and the rules that derive some of them.

Shipped so that a subset needs no second download:

- ``generic``, ``user0`` .. ``user7``: emg2qwerty's official files, byte for byte as at
  commit ``pins.SPLITS_COMMIT`` (their sizes and sha256 are pinned in :mod:`pins`);
- ``single_user``: emg2qwerty's own historic one-user split (its source is in its header);
- derived from ``generic`` and saying so in their header (not official emg2qwerty splits):
  ``generic-test`` (``generic``'s test part: the 8 held-out users' test sessions) and
  ``few-users-K`` for K in ``FEW_USERS`` (rule in :func:`few_users`).

``python -m data_download.shipped`` rewrites the derived files from ``generic.yaml``.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import yaml

from semgkit.split_rules import users_in_order

from . import pins

FOLDER = Path(str(resources.files("data_download") / "splits"))
OFFICIAL = ("generic",) + tuple(f"user{i}" for i in range(8))
FEW_USERS = (8, 16)
DERIVED = ("generic-test",) + tuple(f"few-users-{k}" for k in FEW_USERS)
SHIPPED = OFFICIAL + ("single_user",) + DERIVED
PARTS = ("train", "val", "test")


def path(name: str) -> Path:
    """The shipped file of split ``name``; a one-line ``ValueError`` lists the known names."""
    if name not in SHIPPED:
        raise ValueError(f"no shipped split {name!r}; shipped: {', '.join(SHIPPED)}")
    return FOLDER / f"{name}.yaml"


def dataset(source: Path) -> dict[str, list[dict]]:
    """A split file's ``dataset`` parts (train/val/test lists of {user, session})."""
    spec = yaml.safe_load(source.read_text(encoding="utf-8-sig"))
    parts = spec["dataset"]
    return {part: list(parts.get(part) or []) for part in PARTS}


def session_users() -> dict[str, str]:
    """Session -> user id over every official split file (1,129 of the release's 1,135
    sessions, 104 of its 108 users: the rest are in no official split)."""
    out: dict[str, str] = {}
    for name in OFFICIAL:
        for entries in dataset(path(name)).values():
            out.update({str(e["session"]): str(e["user"]) for e in entries})
    return out


def generic_test(generic: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """``generic``'s test part alone: the 8 held-out users' test sessions."""
    return {"train": [], "val": [], "test": generic["test"]}


def few_users(generic: dict[str, list[dict]], k: int) -> dict[str, list[dict]]:
    """The first ``k`` training users of ``generic``: users in the order they first
    appear in its train list; train and val are those users' ``generic`` train and val
    sessions in file order; test is ``generic``'s test part (8 held-out users), unchanged."""
    users = users_in_order(generic["train"])
    if len(users) < k:
        raise ValueError(f"generic has {len(users)} training users, fewer than {k}")
    chosen = set(users[:k])
    return {
        "train": [e for e in generic["train"] if e["user"] in chosen],
        "val": [e for e in generic["val"] if e["user"] in chosen],
        "test": generic["test"],
    }


def render(name: str, parts: dict[str, list[dict]], rule: str) -> str:
    """A derived split file: emg2qwerty's YAML layout under a header naming its source."""
    size, sha = pins.SPLITS["generic"]
    header = [
        "# @package _global_",
        f"# DERIVED by semgkit, not an official emg2qwerty split: {rule}",
        f"# Source: facebookresearch/emg2qwerty config/user/generic.yaml at commit "
        f"{pins.SPLITS_COMMIT[:7]} ({size} bytes, sha256 {sha}).",
    ]
    body = yaml.safe_dump({"user": name, "dataset": parts}, sort_keys=False)
    return "\n".join(header) + "\n" + body


RULES = {
    "generic-test": "generic's test part only (the 8 held-out users' test sessions).",
    **{
        f"few-users-{k}": f"the first {k} users in order of first appearance in generic's "
        f"train list; their generic train and val sessions; generic's test part unchanged."
        for k in FEW_USERS
    },
}


def derived_texts() -> dict[str, str]:
    """The derived files' text, computed from the shipped ``generic.yaml``."""
    generic_path = path("generic")
    size, sha = pins.SPLITS["generic"]
    data = generic_path.read_bytes()
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(f"{generic_path}: not the pinned official file")
    generic = dataset(generic_path)
    parts = {"generic-test": generic_test(generic)}
    parts.update({f"few-users-{k}": few_users(generic, k) for k in FEW_USERS})
    return {name: render(name, p, RULES[name]) for name, p in parts.items()}


if __name__ == "__main__":
    for split_name, text in derived_texts().items():
        (FOLDER / f"{split_name}.yaml").write_text(text)
        print(f"wrote {FOLDER / split_name}.yaml")
