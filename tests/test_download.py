"""data_download against a loopback HTTP server with Range and If-Range support.

The server serves files from a dict with an ETag (the content's hash) and Last-Modified,
and can be told to cut a response after N bytes, to serve corrupted bytes, to send no
validators or to ignore If-Range, or to answer 404; it records every Range and If-Range
header it sees. The archive is a small tar.gz of sessions written with h5py in
emg2qwerty's exact layout.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import importlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from data_download import DownloadError, FetchOptions, UnsafeArchiveError, fetch, safe_extract
from data_download import emg2qwerty as e2q
from data_download.archive import MalformedArchiveError
from data_download.fetch import MANIFEST

ROOT = Path(__file__).resolve().parent.parent
fetch_module = importlib.import_module("data_download.fetch")  # the package exports fetch()
OPTS = FetchOptions(timeout=5.0, retries=0, progress=False)
ARCHIVE = "emg2qwerty-data-2021-08.tar.gz"


# ---------------------------------------------------------------- loopback server


class FileServer:
    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.cut_after: dict[str, int] = {}  # path -> bytes sent before dropping (once)
        self.corrupt: set[str] = set()
        self.no_validators: set[str] = set()  # paths served without ETag / Last-Modified
        self.ignore_if_range: set[str] = set()  # paths whose Range is honoured blindly
        self.ranges: list[tuple[str, str]] = []
        self.if_ranges: list[str] = []
        self.gets: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = self.path.lstrip("/")
                server.gets.append(path)
                if path not in server.files:
                    self.send_error(404)
                    return
                data = server.files[path]
                if path in server.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                digest = hashlib.sha256(data).hexdigest()
                validators = {  # one version per content: both change when the bytes do
                    "ETag": f'"{digest[:16]}"',
                    "Last-Modified": f"Sat, 28 Nov 2026 {int(digest[:4], 16) % 24:02}:00:00 GMT",
                }
                if path in server.no_validators:
                    validators = {}
                start, status = 0, 200
                rng = self.headers.get("Range")
                if condition := self.headers.get("If-Range"):
                    server.if_ranges.append(condition)
                    if condition not in validators.values() and path not in server.ignore_if_range:
                        rng = None  # RFC 9110: a changed file is sent whole, with 200
                if rng:
                    server.ranges.append((path, rng))
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    status = 206
                self.send_response(status)
                for key, value in validators.items():
                    self.send_header(key, value)
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if path in server.cut_after:
                    body = body[: server.cut_after.pop(path)]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FileServer({})
    yield srv
    srv.close()


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "data_download", *args, "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---------------------------------------------------------------- emg2qwerty-shaped data

SESSIONS = [  # (session, user, duration in minutes)
    ("2020-12-17-1608247041-keystrokes-dca-study@1-aaaa", "user-a", 1.5),
    ("2020-12-17-1608255062-keystrokes-dca-study@1-aaaa", "user-a", 2.0),
    ("2021-01-05-1609855062-keystrokes-dca-study@1-bbbb", "user-b", 0.5),
    ("2021-02-11-1613055062-keystrokes-dca-study@1-cccc", "user-c", 1.0),
]


def write_session(
    path: Path, session: str, user: str, minutes: float, condition: str, n: int = 200
) -> None:
    """One session file in emg2qwerty's layout (a short signal; attrs carry the duration)."""
    dtype = np.dtype([("emg_left", "<f4", (16,)), ("emg_right", "<f4", (16,)), ("time", "<f8")])
    rows = np.zeros(n, dtype=dtype)
    rng = np.random.default_rng(len(session))
    rows["emg_left"] = rng.standard_normal((n, 16))
    rows["emg_right"] = rng.standard_normal((n, 16))
    rows["time"] = 1.6e9 + np.arange(n) / 2000.0
    keys = [{"key": "a", "start": 1.6e9 + 0.01, "end": 1.6e9 + 0.02}]
    prompts = [{"payload": {"text": "a"}, "start": 1.6e9, "end": 1.6e9 + 0.1}]
    with h5py.File(path, "w") as f:
        group = f.create_group("emg2qwerty")
        group.create_dataset("timeseries", data=rows)
        group.attrs.update(
            session_name=session,
            user=user,
            condition=condition,
            duration_mins=minutes,
            keystrokes=json.dumps(keys),
            prompts=json.dumps(prompts),
        )


def write_metadata(path: Path, sessions) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session", "user", "duration_mins", "num_keystrokes", "num_prompts"])
        for session, user, minutes in sessions:
            w.writerow([session, user, minutes, 1, 1])


def build_archive(tmp: Path) -> bytes:
    top = tmp / "emg2qwerty-data-2021-08"
    top.mkdir()
    for i, (session, user, minutes) in enumerate(SESSIONS):
        condition = "on_keyboard" if i else "off_keyboard"
        write_session(top / f"{session}.hdf5", session, user, minutes, condition)
    write_metadata(top / "metadata.csv", SESSIONS)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(top, arcname=top.name)
    return buf.getvalue()


def split_yaml(sessions) -> bytes:
    """A split file written the way emg2qwerty's scripts/generate_splits.py writes them."""

    def records(rows):
        return [{"user": user, "session": session} for session, user, _ in rows]

    split = {"train": records(sessions[:2]), "val": [], "test": records(sessions[2:])}
    text = "# @package _global_\n" + yaml.safe_dump({"dataset": split}, sort_keys=False)
    return text.encode()


@pytest.fixture
def dataset_server(server, tmp_path):
    server.files[ARCHIVE] = build_archive(tmp_path)
    for name in e2q.SPLIT_NAMES:
        server.files[f"{name}.yaml"] = split_yaml(SESSIONS)
    return server


def published(dest: Path) -> set[str]:
    return {str(p.relative_to(dest)) for p in dest.rglob("*")}


# ---------------------------------------------------------------- dataset command


def test_full_download_extracts_and_reports(dataset_server, tmp_path):
    dest = tmp_path / "data"
    e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    for session, _, _ in SESSIONS:
        assert (dest / f"{session}.hdf5").is_file()
    assert (dest / "metadata.csv").is_file()
    assert sorted(p.name for p in (dest / "splits").iterdir()) == sorted(
        f"{n}.yaml" for n in e2q.SPLIT_NAMES
    )
    assert not any(p.name.endswith(".part") for p in dest.rglob("*"))
    manifest = json.loads((dest / MANIFEST).read_text())
    archive_bytes = dataset_server.files[ARCHIVE]
    assert manifest[ARCHIVE]["size"] == len(archive_bytes)
    assert manifest[ARCHIVE]["sha256"] == hashlib.sha256(archive_bytes).hexdigest()
    assert manifest[f"extracted:{ARCHIVE}"]["archive_sha256"] == manifest[ARCHIVE]["sha256"]

    rep = e2q.report(dest, progress=False)
    assert (rep.listed, rep.found, rep.users) == (4, 4, 3)
    assert rep.hours == pytest.approx(sum(m for _, _, m in SESSIONS) / 60)
    assert rep.missing == rep.extra == [] and rep.unreadable == {}
    assert rep.split_missing == {n: 0 for n in e2q.SPLIT_NAMES}
    assert rep.conditions == {"off_keyboard": 1, "on_keyboard": 3}
    assert rep.ok
    split_file = dest / "splits" / "user0.yaml"
    parsed = yaml.safe_load(split_file.read_text())["dataset"]
    assert e2q.split_sessions(split_file) == {
        part: [row["session"] for row in rows] for part, rows in parsed.items()
    }
    assert e2q.split_sessions(split_file)["train"] == [s for s, _, _ in SESSIONS[:2]]

    # a rerun skips everything that is complete and verified: no request at all
    requests = len(dataset_server.gets)
    e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    assert len(dataset_server.gets) == requests
    # ... also once the archive has been deleted to reclaim its space
    (dest / ARCHIVE).unlink()
    e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    assert len(dataset_server.gets) == requests


def test_cli_dataset_command_prints_report(dataset_server, tmp_path):
    dest = tmp_path / "data"
    cmd = [sys.executable, "-m", "data_download", "emg2qwerty", "--dest", str(dest)]
    proc = subprocess.run(
        cmd + ["--mirror", dataset_server.url, "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "sessions found: 4 of 4 listed in metadata.csv" in proc.stdout
    assert "users: 3" in proc.stdout


def test_report_flags_missing_and_unreadable_sessions(dataset_server, tmp_path):
    dest = tmp_path / "data"
    e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    gone = SESSIONS[3][0]
    (dest / f"{gone}.hdf5").unlink()
    (dest / f"{SESSIONS[0][0]}.hdf5").write_bytes(b"not hdf5")
    with h5py.File(dest / "stray.hdf5", "w") as f:
        f.create_group("emg2qwerty")
    rep = e2q.report(dest, progress=False)
    assert rep.missing == [gone]
    assert rep.extra == ["stray"]
    assert set(rep.unreadable) == {f"{SESSIONS[0][0]}.hdf5", "stray.hdf5"}
    assert "timeseries" in rep.unreadable["stray.hdf5"]
    assert (rep.found, rep.users) == (2, 2)
    assert rep.split_missing["generic"] == 2  # the deleted and the unreadable session
    assert not rep.ok
    proc = subprocess.run(
        [sys.executable, "-m", "data_download", "check", str(dest), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error:") and "incomplete" in proc.stderr


def test_truncated_archive_leaves_nothing_that_looks_extracted(dataset_server, tmp_path):
    good = dataset_server.files[ARCHIVE]
    dataset_server.files[ARCHIVE] = good[: len(good) // 2]  # served whole, but cut short
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="truncated or malformed"):
        e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    left = published(dest)
    assert not any(name.endswith(".hdf5") or name == "metadata.csv" for name in left)
    assert ARCHIVE not in left and ".extract.part" not in left
    assert ARCHIVE not in json.loads((dest / MANIFEST).read_text())
    # once the server has the whole archive, a rerun downloads and extracts it
    dataset_server.files[ARCHIVE] = good
    e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    assert e2q.report(dest, progress=False).ok


@pytest.mark.parametrize(
    "content", [b"\xff\xfe\x00 not text", b"x,y\n1,2\n", b"session,user\n"], ids=str
)
def test_bad_metadata_csv_is_a_one_line_error(tmp_path, content):
    (tmp_path / "metadata.csv").write_bytes(content)
    proc = _cli("check", str(tmp_path))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"error: {tmp_path / 'metadata.csv'}: ")


def test_mirror_missing_file_is_a_one_line_http_error(dataset_server, tmp_path):
    del dataset_server.files["user3.yaml"]
    dest = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "data_download", "emg2qwerty", "--dest", str(dest)]
        + ["--mirror", dataset_server.url, "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "HTTP 404" in proc.stderr
    assert not (dest / "splits" / "user3.yaml").exists()


# ---------------------------------------------------------------- fetch


BLOB = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


def test_cut_download_resumes_with_a_range_request(server, tmp_path):
    server.files["blob.bin"] = BLOB
    server.cut_after["blob.bin"] = 100_000
    with pytest.raises(DownloadError, match="connection lost after 100000 bytes"):
        fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    assert not (tmp_path / "blob.bin").exists()
    assert (tmp_path / "blob.bin.part").stat().st_size == 100_000

    path = fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    assert server.ranges == [("blob.bin", "bytes=100000-")]
    assert server.if_ranges == [f'"{BLOB_SHA[:16]}"']  # resumed only if unchanged
    assert path.read_bytes() == BLOB
    assert not (tmp_path / "blob.bin.part").exists()
    assert not (tmp_path / "blob.bin.part.json").exists()


def test_kill_between_last_byte_and_rename_publishes_on_rerun(server, tmp_path, monkeypatch):
    server.files["blob.bin"] = BLOB

    real_replace = os.replace

    def killed_at_publish(src, dst):
        if str(src).endswith(".part"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(fetch_module.os, "replace", killed_at_publish)
    with pytest.raises(KeyboardInterrupt):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    monkeypatch.undo()
    assert (tmp_path / "blob.bin.part").stat().st_size == len(BLOB)
    path = fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    assert path.read_bytes() == BLOB  # the server answered 416: nothing left to send
    assert server.ranges == [("blob.bin", f"bytes={len(BLOB)}-")] and len(server.gets) == 2


NEW_BLOB = BLOB[::-1]  # same size, other bytes: a file replaced on the server
NEW_SHA = hashlib.sha256(NEW_BLOB).hexdigest()


@pytest.mark.parametrize(
    "behaviour, resumed_with_range",
    [
        ("honours If-Range", False),  # answers the ranged request with 200 and the new file
        ("ignores If-Range", True),  # answers 206 with the new ETag: we notice and restart
        ("sends no validators", False),  # nothing proves the file unchanged: never resume
    ],
)
def test_file_changed_on_server_between_attempts_is_never_spliced(
    server, tmp_path, capsys, behaviour, resumed_with_range
):
    server.files["blob.bin"] = BLOB
    server.cut_after["blob.bin"] = 100_000
    if behaviour == "ignores If-Range":
        server.ignore_if_range.add("blob.bin")
    if behaviour == "sends no validators":
        server.no_validators.add("blob.bin")
    with pytest.raises(DownloadError, match="connection lost after 100000 bytes"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    server.files["blob.bin"] = NEW_BLOB

    path = fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert path.read_bytes() == NEW_BLOB
    assert json.loads((tmp_path / MANIFEST).read_text())["blob.bin"]["sha256"] == NEW_SHA
    assert (
        ("blob.bin", "bytes=100000-") in server.ranges if resumed_with_range else not server.ranges
    )
    assert server.gets == ["blob.bin"] * (3 if resumed_with_range else 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "restarting the download from zero" in err
    assert not (tmp_path / "blob.bin.part").exists()
    assert not (tmp_path / "blob.bin.part.json").exists()


@pytest.mark.parametrize(
    "saved, condition",
    [
        ({"etag": '"abc"', "last_modified": "Sat, 28 Nov 2026 01:00:00 GMT"}, '"abc"'),
        ({"etag": 'W/"abc"', "last_modified": "Sat, 28 Nov 2026 01:00:00 GMT"}, "Sat, 28"),
        ({"etag": 'W/"abc"'}, None),  # a weak ETag may not be used in If-Range: restart
        ({}, None),
    ],
)
def test_if_range_uses_a_strong_etag_or_the_date(saved, condition):
    got = fetch_module.if_range(saved)
    assert got == condition if condition is None else got.startswith(condition)


def test_changed_file_fails_the_recorded_sha256_instead_of_being_spliced(server, tmp_path):
    server.files["blob.bin"] = BLOB
    server.cut_after["blob.bin"] = 100_000
    with pytest.raises(DownloadError, match="connection lost"):
        fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    server.files["blob.bin"] = NEW_BLOB
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_part_file_without_its_validators_or_from_another_url_restarts(server, tmp_path, capsys):
    server.files["blob.bin"] = BLOB
    server.files["mirror/blob.bin"] = BLOB
    (tmp_path / "blob.bin.part").write_bytes(NEW_BLOB[:1000])  # e.g. left by an older version
    path = fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert path.read_bytes() == BLOB and not server.ranges
    assert "no ETag/Last-Modified recorded" in capsys.readouterr().err

    path.unlink()
    fetch_module.update_manifest(tmp_path, "blob.bin", None)
    server.cut_after["blob.bin"] = 1000
    with pytest.raises(DownloadError, match="connection lost"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    path = fetch(f"{server.url}/mirror/blob.bin", tmp_path, options=OPTS)  # another server
    assert path.read_bytes() == BLOB and not server.ranges


def test_dropped_connection_is_resumed_automatically_with_retries(server, tmp_path):
    server.files["blob.bin"] = BLOB
    server.cut_after["blob.bin"] = 50_000
    opts = FetchOptions(timeout=5.0, retries=1, progress=False)
    path = fetch(f"{server.url}/blob.bin", tmp_path, options=opts)
    assert path.read_bytes() == BLOB
    assert server.ranges == [("blob.bin", "bytes=50000-")]


def test_checksum_mismatch_never_publishes(server, tmp_path):
    server.files["blob.bin"] = BLOB
    server.corrupt.add("blob.bin")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    assert not (tmp_path / "blob.bin").exists()
    assert not (tmp_path / "blob.bin.part").exists()


def test_later_download_must_match_the_sha256_recorded_first(server, tmp_path):
    server.files["blob.bin"] = BLOB
    path = fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert json.loads((tmp_path / MANIFEST).read_text())["blob.bin"]["sha256"] == BLOB_SHA
    path.unlink()
    server.corrupt.add("blob.bin")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert not path.exists()


def test_rerun_detects_a_file_damaged_after_download(server, tmp_path):
    server.files["blob.bin"] = BLOB
    path = fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    path.write_bytes(BLOB[:-1] + b"\x00")
    with pytest.raises(DownloadError, match="corrupt or was replaced"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)


def test_unknown_file_at_final_path_is_not_trusted(server, tmp_path):
    server.files["blob.bin"] = BLOB
    (tmp_path / "blob.bin").write_bytes(BLOB[:10])
    with pytest.raises(DownloadError, match="not recorded"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    with pytest.raises(DownloadError, match="does not match"):
        fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    # a complete copy from elsewhere is adopted when its sha256 is given, without a request
    (tmp_path / "blob.bin").write_bytes(BLOB)
    fetch(f"{server.url}/blob.bin", tmp_path, sha256=BLOB_SHA, options=OPTS)
    assert json.loads((tmp_path / MANIFEST).read_text())["blob.bin"]["sha256"] == BLOB_SHA
    assert server.gets == []


def test_not_enough_disk_fails_before_writing(server, tmp_path, monkeypatch):
    server.files["blob.bin"] = BLOB
    monkeypatch.setattr("shutil.disk_usage", lambda _: type("Usage", (), {"free": 1000})())
    with pytest.raises(DownloadError, match="not enough free disk"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_port_fails_fast_with_one_line(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/blob.bin"
    with pytest.raises(DownloadError, match="cannot connect"):
        fetch(url, tmp_path / "a", options=OPTS)
    assert list((tmp_path / "a").iterdir()) == []
    proc = subprocess.run(
        [sys.executable, "-m", "data_download", "fetch", url, "--dest", str(tmp_path / "b")]
        + ["--timeout", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


def test_silent_server_times_out(tmp_path):
    with socket.socket() as sock:  # accepts connections (backlog) but never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/blob.bin"
        opts = FetchOptions(timeout=0.5, retries=0, progress=False)
        with pytest.raises(DownloadError, match="timed out"):
            fetch(url, tmp_path, options=opts)
    assert list(tmp_path.iterdir()) == []


def test_bad_sha256_flag_is_rejected(tmp_path):
    with pytest.raises(DownloadError, match="64 hex digits"):
        fetch("http://127.0.0.1:9/x", tmp_path, sha256="abc", options=OPTS)


def test_local_file_urls_are_refused_with_a_hint(tmp_path):
    local = tmp_path / "local.bin"
    local.write_bytes(BLOB)
    dest = tmp_path / "dest"
    for args, flag in (
        (["fetch", local.as_uri(), "--dest", str(dest)], "file://"),
        (["fetch", str(local), "--dest", str(dest)], str(local)),  # no scheme at all
        (["emg2qwerty", "--dest", str(dest), "--mirror", tmp_path.as_uri()], "--mirror"),
    ):
        proc = _cli(*args)
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1 and flag in proc.stderr
        assert "only http:// and https://" in proc.stderr
    assert not dest.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--retries", "-1"], "retries (--retries) must be >= 0"),
        (["--timeout", "0"], "timeout (--timeout) must be finite and > 0"),
        (["--timeout", "inf"], "timeout (--timeout) must be finite and > 0"),
        (["--name", ".manifest.json"], "reserved"),
        (["--name", "x.part"], "reserved"),
        (["--name", "."], "relative file path"),
        (["--name", "../x"], "relative file path"),
    ],
)
def test_bad_fetch_flags_are_one_line_errors(tmp_path, flags, message):
    dest = tmp_path / "dest"
    proc = _cli("fetch", "http://127.0.0.1:9/blob.bin", "--dest", str(dest), *flags)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not dest.exists()


def test_dest_that_is_a_file_is_a_one_line_error(server, tmp_path):
    server.files["blob.bin"] = BLOB
    url = f"{server.url}/blob.bin"
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    proc = _cli("fetch", url, "--dest", str(afile))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert str(afile) in proc.stderr and "not a directory" in proc.stderr
    assert afile.read_text() == "keep me"


def test_read_only_dest_is_a_one_line_error_naming_it(server, tmp_path, monkeypatch):
    server.files["blob.bin"] = BLOB
    locked = tmp_path / "locked"

    def refuse(path, *args, **kwargs):  # what a read-only parent does (root ignores chmod)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(DownloadError, match=f"^{locked}: Permission denied$"):
        fetch(f"{server.url}/blob.bin", locked, options=OPTS)
    assert server.gets == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "unreadable manifest"),
        ("[1, 2]", "manifest is not a JSON object"),
        ('{"blob.bin": {"size": "big"}}', "entry 'blob.bin' is malformed"),
    ],
)
def test_damaged_manifest_is_named_and_kept(server, tmp_path, text, message):
    server.files["blob.bin"] = BLOB
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(DownloadError, match=f"{MANIFEST}: .*{message}.*delete"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert (tmp_path / MANIFEST).read_text() == text and server.gets == []


def test_disk_full_mid_download_keeps_the_bytes_and_resumes(server, tmp_path, monkeypatch):
    server.files["blob.bin"] = BLOB
    real_open = open

    class FullDisk:  # a file whose disk fills up after 64 KiB
        def __init__(self, f):
            self.f, self.left = f, 65536

        def write(self, chunk):
            if len(chunk) > self.left:
                self.f.write(chunk[: self.left])
                self.left = 0
                raise OSError(errno.ENOSPC, "No space left on device")
            self.left -= len(chunk)
            return self.f.write(chunk)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def full_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if str(path).endswith(".part") and "a" in mode else f

    monkeypatch.setattr(fetch_module, "open", full_open, raising=False)
    opts = FetchOptions(timeout=5.0, retries=0, progress=False, chunk_size=50_000)
    with pytest.raises(DownloadError, match="blob.bin.part: cannot write .No space left"):
        fetch(f"{server.url}/blob.bin", tmp_path, options=opts)
    assert (tmp_path / "blob.bin.part").stat().st_size == 65536
    assert not (tmp_path / "blob.bin").exists()
    monkeypatch.undo()
    path = fetch(f"{server.url}/blob.bin", tmp_path, options=OPTS)
    assert path.read_bytes() == BLOB
    assert server.ranges == [("blob.bin", "bytes=65536-")]


# ---------------------------------------------------------------- hostile archives


def _archive_with(tmp_path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("top/fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "member, reason",
    [
        (_member("../evil"), "outside the destination"),
        (_member("top/../../evil"), "outside the destination"),
        (_member("/tmp/semgkit-evil-absolute"), "absolute path"),
        (_member("top/etc", tarfile.SYMTYPE, "/etc"), "symlink to the absolute path"),
        (_member("top/up", tarfile.SYMTYPE, "../../.."), "only links down"),
        # fine inside top/, outside DEST once top/ is unwrapped
        (_member("top/up", tarfile.SYMTYPE, ".."), "only links down"),
        (_member("top/x.hdf5", tarfile.SYMTYPE, "../y"), "only links down"),
        (_member("top/a", tarfile.SYMTYPE, "../top/fine.txt"), "only links down"),
        (_member("top/self", tarfile.SYMTYPE, "."), "only links down"),
        (_member("top/hard", tarfile.LNKTYPE, "../evil"), "hard link pointing outside"),
        (_member("top/null", tarfile.CHRTYPE), "device file"),
    ],
)
def test_hostile_member_is_rejected_and_nothing_is_written(tmp_path, member, reason):
    data = b"pwned" if member.isreg() else b""
    archive = _archive_with(tmp_path, member, data)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(archive, dest, progress=False)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()
    assert not Path("/tmp/semgkit-evil-absolute").exists()


def test_link_chain_that_climbs_is_rejected(tmp_path):
    # each link looks harmless by itself; through `lnk` the second one leaves DEST
    path = tmp_path / "chain.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(_member("top/a/lnk", tarfile.SYMTYPE, ".."))
        tar.addfile(_member("top/a/esc", tarfile.SYMTYPE, "lnk/../.."))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match="only links down"):
        safe_extract(path, dest, progress=False)
    assert list(dest.iterdir()) == []


def test_links_down_are_kept_and_stay_inside_dest(tmp_path):
    path = tmp_path / "links.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        data = tarfile.TarInfo("top/sub/data.txt")
        data.size = 2
        tar.addfile(data, io.BytesIO(b"ok"))
        tar.addfile(_member("top/current", tarfile.SYMTYPE, "sub/data.txt"))
        tar.addfile(_member("top/copy.txt", tarfile.LNKTYPE, "top/sub/data.txt"))
    dest = tmp_path / "dest"
    dest.mkdir()
    safe_extract(path, dest, progress=False)
    assert (dest / "current").is_symlink()
    for name in ("current", "copy.txt"):
        assert (dest / name).resolve().is_relative_to(dest.resolve())
        assert (dest / name).read_bytes() == b"ok"


def _tar_of(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "many.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "limits, reason",
    [
        ({"max_members": 3}, r"more than 3 members \(max_members\) at member 'top/f3'"),
        ({"max_bytes": 2500}, r"more than 2,500 unpacked bytes \(max_bytes\) at member 'top/f2'"),
    ],
)
def test_member_count_and_size_are_capped(tmp_path, limits, reason):
    archive = _tar_of(tmp_path, {f"top/f{i}": bytes(1000) for i in range(4)})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(archive, dest, progress=False, **limits)
    assert list(dest.iterdir()) == []
    safe_extract(archive, dest, progress=False)  # the defaults allow it
    assert sorted(p.name for p in dest.iterdir()) == [f"f{i}" for i in range(4)]


def test_archive_cannot_replace_the_manifest_or_downloaded_files(tmp_path):
    dest = tmp_path / "dest"
    (dest / "splits").mkdir(parents=True)
    (dest / "splits" / "generic.yaml").write_text("dataset: kept")
    fetch_module.update_manifest(dest, "splits/generic.yaml", {"size": 1, "sha256": "0" * 64})
    before = (dest / MANIFEST).read_text()
    for name in (MANIFEST, "splits/generic.yaml", "many.tar.gz"):
        archive = _tar_of(tmp_path, {f"top/{name}": b"pwned", "top/fine.txt": b"ok"})
        with pytest.raises(UnsafeArchiveError, match="which data_download keeps"):
            safe_extract(archive, dest, progress=False)
    assert (dest / MANIFEST).read_text() == before
    assert (dest / "splits" / "generic.yaml").read_text() == "dataset: kept"
    assert sorted(p.name for p in dest.iterdir()) == sorted([MANIFEST, "splits"])


def test_full_disk_during_extraction_keeps_the_archive_for_a_rerun(
    dataset_server, tmp_path, monkeypatch
):
    def no_space(directory, needed, what):
        raise DownloadError(f"not enough free disk in {directory}: {what}")

    monkeypatch.setattr("data_download.archive.check_free_space", no_space)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="not enough free disk") as info:
        e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    assert not isinstance(info.value, MalformedArchiveError)
    assert (dest / ARCHIVE).exists() and not (dest / "metadata.csv").exists()
    monkeypatch.undo()
    e2q.download(dest, mirror=dataset_server.url, options=OPTS)
    assert dataset_server.gets.count(ARCHIVE) == 1  # not downloaded again
    assert e2q.report(dest, progress=False).ok


@pytest.mark.parametrize(
    "member", [_member("../evil"), _member("top/x.hdf5", tarfile.SYMTYPE, "../outside.hdf5")]
)
def test_hostile_archive_served_over_http_is_unpublished(server, tmp_path, member):
    write_session(tmp_path / "outside.hdf5", "outside", "user-z", 1.0, "on_keyboard")
    archive = _archive_with(tmp_path, member, b"pwned" if member.isreg() else b"")
    server.files[ARCHIVE] = archive.read_bytes()
    for name in e2q.SPLIT_NAMES:
        server.files[f"{name}.yaml"] = split_yaml(SESSIONS[:1])
    dest = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError):
        e2q.download(dest, mirror=server.url, options=OPTS)
    assert not (tmp_path / "evil").exists()
    assert not (dest / ARCHIVE).exists() and not (dest / "metadata.csv").exists()
    assert not any(p.is_symlink() for p in dest.rglob("*"))
