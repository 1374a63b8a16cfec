"""The split files shipped in data_download/splits match their emg2qwerty sources."""

import hashlib
from pathlib import Path

import pytest
import yaml

from data_download import pins, shipped
from data_download.emg2qwerty import split_sessions

SPLITS = Path(__file__).resolve().parents[1] / "data_download" / "splits"
GENERIC = shipped.dataset(shipped.path("generic"))


def users(entries) -> list[int]:
    return sorted({e["user"] for e in entries})


def test_every_shipped_split_is_packaged_and_reads() -> None:
    assert sorted(p.stem for p in SPLITS.glob("*.yaml")) == sorted(shipped.SHIPPED)
    for name in shipped.SHIPPED:
        parts = split_sessions(shipped.path(name))
        sessions = [s for part in parts.values() for s in part]
        assert len(sessions) == len(set(sessions)), name  # no session in two parts


@pytest.mark.parametrize("name", shipped.OFFICIAL)
def test_official_files_are_the_pinned_bytes(name) -> None:
    data = shipped.path(name).read_bytes()
    assert (len(data), hashlib.sha256(data).hexdigest()) == pins.SPLITS[name]


def test_official_counts_and_users() -> None:
    assert {p: len(v) for p, v in GENERIC.items()} == {"train": 837, "val": 192, "test": 16}
    assert len(users(GENERIC["train"])) == 96 and users(GENERIC["val"]) == users(GENERIC["train"])
    held_out = users(GENERIC["test"])
    assert len(held_out) == 8 and not set(held_out) & set(users(GENERIC["train"]))
    personal_tests, personal_users = [], []
    for i, train in enumerate((10, 9, 9, 8, 8, 8, 8, 8)):
        parts = shipped.dataset(shipped.path(f"user{i}"))
        assert {p: len(v) for p, v in parts.items()} == {"train": train, "val": 2, "test": 2}
        (user,) = users(parts["train"] + parts["val"] + parts["test"])
        personal_users.append(user)
        personal_tests += parts["test"]
    assert sorted(personal_users) == held_out
    assert sorted(map(str, personal_tests)) == sorted(map(str, GENERIC["test"]))
    owners = shipped.session_users()
    assert (len(owners), len(set(owners.values()))) == (1129, 104)


def test_single_user_matches_emg2qwerty_historic_file() -> None:
    data = yaml.safe_load((SPLITS / "single_user.yaml").read_text())["dataset"]
    counts = {part: len(data[part]) for part in ("train", "val", "test")}
    assert counts == {"train": 16, "val": 1, "test": 1}
    entries = data["train"] + data["val"] + data["test"]
    assert {e["user"] for e in entries} == {89335547}
    assert len({e["session"] for e in entries}) == 18
    lines = (SPLITS / "single_user.yaml").read_text().splitlines(keepends=True)
    assert lines[0].startswith("# Source: facebookresearch/emg2qwerty")
    historic = ("# @package _global_\n" + "".join(lines[2:])).encode()
    commit, size, sha = pins.SINGLE_USER
    assert commit in lines[1]
    assert (len(historic), hashlib.sha256(historic).hexdigest()) == (size, sha)


def test_generic_test_is_the_held_out_users_test_sessions() -> None:
    text = shipped.path("generic-test").read_text()
    assert "DERIVED by semgkit, not an official emg2qwerty split" in text
    parts = shipped.dataset(shipped.path("generic-test"))
    assert parts == {"train": [], "val": [], "test": GENERIC["test"]}


@pytest.mark.parametrize("k", shipped.FEW_USERS)
def test_few_users_k_is_derived_deterministically(k) -> None:
    derived = shipped.derived_texts()
    assert derived == shipped.derived_texts()  # the same text on every call
    assert shipped.path(f"few-users-{k}").read_text() == derived[f"few-users-{k}"]
    parts = shipped.dataset(shipped.path(f"few-users-{k}"))
    first_seen = list(dict.fromkeys(e["user"] for e in GENERIC["train"]))
    assert [e["user"] for e in parts["train"]] and users(parts["train"]) == sorted(first_seen[:k])
    assert parts["train"] == [e for e in GENERIC["train"] if e["user"] in first_seen[:k]]
    assert parts["val"] == [e for e in GENERIC["val"] if e["user"] in first_seen[:k]]
    assert users(parts["val"]) == users(parts["train"])
    assert parts["test"] == GENERIC["test"]
    assert "DERIVED by semgkit" in shipped.path(f"few-users-{k}").read_text()


def test_few_users_needs_enough_users() -> None:
    with pytest.raises(ValueError, match="fewer than 97"):
        shipped.few_users(GENERIC, 97)
