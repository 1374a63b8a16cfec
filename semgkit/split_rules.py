"""Rules that derive a smaller split from a split file's entries.

Shared by ``data_download.shipped`` (the shipped ``few-users-K`` files) and
``semgkit.repro.leave_users_out`` (the robustness chapter's K-user splits), so both take "the
first K training users" to mean the same users. Standard library only: ``data_download``
imports nothing of semgkit but this and its format modules. Outside the run cache key: a
derived split reaches a run's key through its name and its corpus directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def users_in_order(entries: Iterable[Mapping[str, Any]]) -> list[Any]:
    """The ``user`` of each entry, each once, in the order they first appear."""
    return list(dict.fromkeys(entry["user"] for entry in entries))
