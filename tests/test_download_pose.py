"""``python -m data_download emg2pose`` against a loopback server serving a tar in the
mini set's layout (``emg2pose_dataset_mini/`` holding its six stage files and the
release's metadata.csv, which lists more files than the mini set carries)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from pose_files import write_stage
from test_download import OPTS, ROOT, FileServer

from data_download import DownloadError
from data_download import emg2pose as e2p
from semgkit.pose import PoseSession, load_pose_split

MINI_NAMES = [n for part in yaml.safe_load(e2p.MINI_SPLIT.read_text()).values() for n in part]


def mini_tar(tmp: Path, members: dict[str, bytes] | None = None) -> bytes:
    top = tmp / "emg2pose_dataset_mini"
    top.mkdir()
    angles = 0.2 + 0.1 * np.sin(np.arange(400)[:, None] / 50.0 + np.arange(20))
    for name in MINI_NAMES:
        write_stage(top / f"{name}.hdf5", angles, side=name.rsplit("_", 1)[1], user="e3096")
    with (top / "metadata.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "filename",
                "user",
                "session",
                "stage",
                "side",
                "moving_hand",
                "held_out_user",
                "held_out_stage",
                "split",
                "generalization",
            ]
        )
        for i, name in enumerate(MINI_NAMES + ["not-in-the-mini-set_left"]):
            part = ("train", "val", "test")[min(i // 2, 2)]
            w.writerow(
                [
                    name,
                    "e3096",
                    name.rsplit("_", 1)[0],
                    "s",
                    name.rsplit("_", 1)[1],
                    "both",
                    False,
                    False,
                    part,
                    "",
                ]
            )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:  # the mini set is a plain tar
        tar.add(top, arcname=top.name)
        for name, data in (members or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def mini_server(tmp_path):
    server = FileServer({e2p.MINI: mini_tar(tmp_path)})
    yield server
    server.close()


def _cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "data_download", "emg2pose", *args, "--quiet"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_mini_set_downloads_extracts_and_reads(mini_server, tmp_path):
    dest = tmp_path / "pose"
    proc = _cli("--dest", str(dest), "--mini", "--mirror", mini_server.url)
    assert proc.returncode == 0, proc.stderr
    assert "stage files found: 6 (7 listed in metadata.csv)" in proc.stdout
    assert "split mini: complete" in proc.stdout and "sides: left 3, right 3" in proc.stdout
    split = load_pose_split(dest, "mini")
    assert [PoseSession(p).side for p in split.train] == ["left", "right"]
    assert PoseSession(split.test[0]).user == "e3096"
    requests = len(mini_server.gets)
    assert _cli("--dest", str(dest), "--mini", "--mirror", mini_server.url).returncode == 0
    assert len(mini_server.gets) == requests  # complete and verified: nothing fetched again


def test_cut_download_resumes_and_then_extracts(mini_server, tmp_path):
    mini_server.cut_after[e2p.MINI] = 5000
    dest = tmp_path / "pose"
    first = _cli("--dest", str(dest), "--mini", "--mirror", mini_server.url, "--retries", "0")
    assert first.returncode == 1 and first.stderr.startswith("error:")
    assert not (dest / "metadata.csv").exists() and (dest / f"{e2p.MINI}.part").is_file()
    again = _cli("--dest", str(dest), "--mini", "--mirror", mini_server.url)
    assert again.returncode == 0, again.stderr
    assert mini_server.ranges == [(e2p.MINI, "bytes=5000-")]
    assert len(load_pose_split(dest, "mini").val) == 2


def test_hostile_member_is_refused_and_nothing_is_extracted(tmp_path):
    server = FileServer({e2p.MINI: mini_tar(tmp_path, {"../escape.txt": b"x"})})
    try:
        dest = tmp_path / "pose"
        with pytest.raises(DownloadError, match="escape"):
            e2p.download(dest, mini=True, mirror=server.url, options=OPTS)
        assert not list(dest.glob("*.hdf5")) and not (tmp_path / "escape.txt").exists()
        assert not (dest / e2p.MINI).exists()  # unpublished: a rerun fetches it anew
    finally:
        server.close()


def test_report_names_unreadable_stages_and_an_incomplete_split(mini_server, tmp_path):
    dest = e2p.download(tmp_path / "pose", mini=True, mirror=mini_server.url, options=OPTS)
    (dest / f"{MINI_NAMES[0]}.hdf5").unlink()
    write_stage(dest / "odd_up.hdf5", np.ones((10, 20)), side="up")
    rep = e2p.report(dest, "mini", progress=False)
    assert rep.found == 5 and rep.split_missing == {"mini": 1} and not rep.ok
    assert rep.unreadable == {"odd_up.hdf5": "attribute side is 'up', expected 'left' or 'right'"}
    full = e2p.report(dest, "full", progress=False)
    assert full.split_missing == {"full": 2}  # the deleted stage and the one not in the mini set
