"""Session and split files whose errors used to name the wrong cause, or none: a time
column that is NaN, constant or not increasing; split entries that leave the corpus, a
session in two parts of a split, a split file that is not YAML; a BOM in metadata.csv
(emg2qwerty's and emg2pose's)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_download.emg2pose import report as pose_report
from semgkit import cli
from semgkit.data import Session, load_split
from semgkit.pose import load_pose_split
from tests.pose_files import write_stage
from tests.test_data import FS, T0, write_emg2qwerty, write_split
from tests.test_download import _cli

ROOT = Path(__file__).resolve().parent.parent


def read_all(path: Path) -> None:
    s = Session(path)
    s.key_events()
    assert s.sample_rate > 0


@pytest.mark.parametrize(
    "times, message",
    [
        (
            np.where(np.arange(4000) == 7, np.nan, T0 + np.arange(4000) / FS),
            "time is nan at sample 7",
        ),
        (
            np.full(4000, T0),
            f"time does not increase \\({T0} at the first sample, {T0} at the last",
        ),
        (np.r_[T0, np.full(3998, T0 + 1), np.nan], "time is nan at sample 3999"),
    ],
    ids=["nan", "constant", "nan-last"],
)
def test_a_time_column_that_is_not_a_clock_is_named(tmp_path, times, message):
    path = write_emg2qwerty(tmp_path / "clock.hdf5", times=times)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "keystrokes outside the recording", no NumPy warning
        with pytest.raises(ValueError, match=rf"clock\.hdf5: field {message}"):
            read_all(path)

    if not times[-1] > times[0]:  # the rate is read from the ends alone
        with pytest.raises(ValueError, match=r"clock\.hdf5: field time does not increase"):
            _ = Session(path).sample_rate  # was inf, with a NumPy warning


@pytest.mark.parametrize("entry", ["../outside", "sub/s0", "/tmp/s0", "..", ""])
def test_a_split_entry_cannot_leave_the_corpus(tmp_path, entry):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_emg2qwerty(corpus / "s0.hdf5")
    write_emg2qwerty(tmp_path / "outside.hdf5")  # would be read without the check
    write_split(corpus, "bad", {"train": [{"session": "s0"}], "test": [{"session": entry}]})
    with pytest.raises(ValueError, match=r"bad\.yaml: dataset\.test\[0\]: session .* not a file"):
        load_split(corpus, "bad")


def test_a_session_in_two_parts_of_a_split_is_named(tmp_path):
    write_emg2qwerty(tmp_path / "s0.hdf5")
    write_emg2qwerty(tmp_path / "s1.hdf5")
    split = {"train": [{"session": "s0"}, {"session": "s1"}], "test": [{"session": "s1"}]}
    write_split(tmp_path, "leaky", split)
    with pytest.raises(
        ValueError, match=r"leaky\.yaml: dataset\.test\[0\]: session 's1' is also in train"
    ):
        load_split(tmp_path, "leaky")


@pytest.mark.parametrize(
    "text, message",
    [
        ("dataset: [unclosed\n", "not a YAML split file"),
        ("\x00\x01binary", "not a YAML split file"),
        ("- a\n- b\n", "a YAML list, not a mapping"),
        ("dataset:\n  train: s0\n", "dataset.train is not a list of sessions"),
    ],
)
def test_a_split_file_that_is_not_a_split_is_a_one_line_error(tmp_path, capsys, text, message):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "bad.yaml").write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        load_split(tmp_path, "bad")
    assert str(tmp_path / "splits" / "bad.yaml") in str(info.value)
    assert "\n" not in str(info.value)
    rc = cli.main(
        [
            "train",
            "--data",
            str(tmp_path),
            "--split",
            "bad",
            "--preset",
            "lap-student",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and message in err.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


def test_a_bom_in_metadata_csv_is_not_a_missing_column(tmp_path):
    rows = "session,user\ns0,u\n"
    (tmp_path / "metadata.csv").write_bytes(b"\xef\xbb\xbf" + rows.encode())
    proc = _cli("check", str(tmp_path))
    assert "needs a 'session' column" not in proc.stderr
    assert "sessions found: 0 of 1 listed" in proc.stdout and "missing s0" in proc.stdout


def test_split_files_with_a_bom_still_read(tmp_path):
    write_emg2qwerty(tmp_path / "s0.hdf5")
    (tmp_path / "splits").mkdir()
    text = yaml.safe_dump({"dataset": {"train": [{"session": "s0"}]}})
    (tmp_path / "splits" / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert [p.name for p in load_split(tmp_path, "bom").train] == ["s0.hdf5"]


# --- the same for emg2pose's splits and metadata.csv ----------------------------------------


def pose_corpus(root: Path, metadata: str, bom: bool = False) -> Path:
    """Stage files r1_left, r2_left (and outside.hdf5 beside ``root``) and a metadata.csv."""
    root.mkdir()
    for name in ("r1_left", "r2_left"):
        write_stage(root / f"{name}.hdf5", np.full((100, 20), 0.1))
    write_stage(root.parent / "outside.hdf5", np.full((100, 20), 0.1))
    (root / "metadata.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + metadata.encode())
    return root


POSE_HEADER = "filename,user,session,stage,side,split\n"


@pytest.mark.parametrize(
    "split, message",
    [
        ({"train": ["r1_left"], "test": ["../outside"]}, r"test\[0\]: file '\.\./outside' is not"),
        (
            {"train": ["r1_left", "r2_left"], "test": ["r2_left"]},
            r"test\[0\]: file 'r2_left' is also in train",
        ),
    ],
)
def test_pose_split_entries_cannot_leave_the_corpus_or_be_in_two_parts(tmp_path, split, message):
    root = pose_corpus(tmp_path / "pose", POSE_HEADER)
    (root / "splits").mkdir()
    (root / "splits" / "bad.yaml").write_text(yaml.safe_dump(split))
    with pytest.raises(ValueError, match=rf"bad\.yaml: {message}"):
        load_pose_split(root, "bad")
    rows = [f"{n},u,s,st,left,{p}" for p, names in split.items() for n in names]
    (root / "metadata.csv").write_text(POSE_HEADER + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=rf"metadata\.csv: {message}"):
        load_pose_split(root, "full")  # the same rule for the release's own list


def test_a_bom_in_emg2pose_metadata_csv_is_not_a_missing_column(tmp_path):
    root = pose_corpus(tmp_path / "pose", POSE_HEADER + "r1_left,u,r1,st,left,train\n", bom=True)
    assert [p.name for p in load_pose_split(root, "full").train] == ["r1_left.hdf5"]
    rep = pose_report(root, "full", progress=False)
    assert rep.listed == 1 and rep.split_missing == {"full": 0}
