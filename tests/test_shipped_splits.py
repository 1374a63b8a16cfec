"""The split files shipped in data_download/splits match their emg2qwerty sources."""

from pathlib import Path

import yaml

SPLITS = Path(__file__).resolve().parents[1] / "data_download" / "splits"


def test_single_user_matches_emg2qwerty_historic_file() -> None:
    data = yaml.safe_load((SPLITS / "single_user.yaml").read_text())["dataset"]
    counts = {part: len(data[part]) for part in ("train", "val", "test")}
    assert counts == {"train": 16, "val": 1, "test": 1}
    entries = data["train"] + data["val"] + data["test"]
    assert {e["user"] for e in entries} == {89335547}
    assert len({e["session"] for e in entries}) == 18
