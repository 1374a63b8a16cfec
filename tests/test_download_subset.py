"""Subset downloads (``--split``/``--users``): the archive streamed, never stored.

The archive is built here in the release's layout (``emg2qwerty-data-2021-08/`` holding
session files written with h5py and ``metadata.csv``), with the sessions of the shipped
split ``user0`` spread between other users' and a large unwanted member at the end, and
served by the loopback server of ``test_download`` (Range and If-Range honoured).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from test_download import ARCHIVE, OPTS, ROOT, FileServer, _cli, write_metadata, write_session
from test_download_hostile import Scripted, drip, head

from data_download import DownloadError, FetchOptions, shipped
from data_download import subset as subset_module
from data_download.archive import MalformedArchiveError, UnsafeArchiveError
from data_download.emg2qwerty import SUBSET_RECORD, subset_report
from data_download.fetch import MANIFEST
from data_download.subset import download_subset, select

TOP = "emg2qwerty-data-2021-08"
USER0 = [e["session"] for part in shipped.dataset(shipped.path("user0")).values() for e in part]
USER0_ID = "43037958"
OTHERS = [f"2021-03-0{i}-16{i}0000000-keystrokes-dca-study@1-other" for i in range(1, 4)]
TAIL = "2021-04-01-1617000000-keystrokes-dca-study@1-tail"  # 1 MB, last in the archive


def build_release(tmp: Path, extra: list[tuple[str, str]] = ()) -> tuple[bytes, dict[str, bytes]]:
    """The archive's bytes, and each session file's bytes by file name."""
    top = tmp / "src" / TOP
    top.mkdir(parents=True)
    order = [OTHERS[0], *USER0[:7], "metadata.csv", OTHERS[1], *USER0[7:], OTHERS[2], TAIL]
    rows = []
    for name in order:
        if name == "metadata.csv":
            continue
        user = USER0_ID if name in USER0 else "777"
        write_session(
            top / f"{name}.hdf5", name, user, 1.0, "on_keyboard", n=8000 if name == TAIL else 400
        )
        rows.append((name, user, 1.0))
    write_metadata(top / "metadata.csv", rows)
    archive = tmp / "src" / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(top, arcname=TOP, recursive=False)
        for name in order:
            file = name if name == "metadata.csv" else f"{name}.hdf5"
            tar.add(top / file, arcname=f"{TOP}/{file}")
        for arcname, linkname in extra:
            info = tarfile.TarInfo(arcname)
            info.type, info.linkname = tarfile.SYMTYPE, linkname
            tar.addfile(info)
    files = {p.name: p.read_bytes() for p in top.glob("*.hdf5")}
    return archive.read_bytes(), files


@pytest.fixture
def release(tmp_path):
    data, files = build_release(tmp_path)
    server = FileServer({ARCHIVE: data})
    yield server, files
    server.close()


@pytest.fixture
def stream_positions(monkeypatch) -> list[tuple[int, int]]:
    """(bytes read, archive size) of every archive stream when it is closed."""
    seen: list[tuple[int, int]] = []

    class Recording(subset_module.ArchiveStream):
        def close(self):
            if not self.closed:
                seen.append((self.position, self.total))
            super().close()

    monkeypatch.setattr(subset_module, "ArchiveStream", Recording)
    return seen


def tree(dest: Path) -> dict[str, bytes | None]:
    """Every path under dest (the manifest aside) -> its bytes (None for folders)."""
    return {
        str(p.relative_to(dest)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(dest.rglob("*"))
        if p.name != MANIFEST
    }


def members(dest: Path) -> dict:
    return json.loads((dest / MANIFEST).read_text())[SUBSET_RECORD]["members"]


def assert_published_and_verified(dest: Path, files: dict[str, bytes], sessions) -> None:
    record = members(dest)
    for session in sessions:
        data = (dest / f"{session}.hdf5").read_bytes()
        assert data == files[f"{session}.hdf5"]
        assert record[f"{session}.hdf5"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert (
            record[f"{session}.hdf5"]["mtime_ns"] == (dest / f"{session}.hdf5").stat().st_mtime_ns
        )


def test_a_shipped_split_keeps_exactly_its_sessions_and_stops_early(
    release, tmp_path, stream_positions
):
    server, files = release
    dest = tmp_path / "data"
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    expected = {f"{s}.hdf5" for s in USER0} | {"splits", "splits/user0.yaml"}
    assert set(tree(dest)) == expected  # no metadata.csv, no other session, no staging
    assert (dest / "splits/user0.yaml").read_bytes() == shipped.path("user0").read_bytes()
    assert_published_and_verified(dest, files, USER0)
    ((read, total),) = stream_positions
    assert read < total - 500_000  # stopped before the ~1 MB tail member

    # a rerun finds everything published and verified: no request at all
    gets = len(server.gets)
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert len(server.gets) == gets
    rep = subset_report(dest, select(["user0"], [], dest).named)
    assert rep.ok and "split user0: complete (14 sessions)" in rep.summary()


def test_users_select_the_sessions_the_official_splits_list(release, tmp_path):
    server, files = release
    dest = tmp_path / "data"
    download_subset(dest, select([], [USER0_ID]), mirror=server.url, options=OPTS)
    assert {p.stem for p in dest.glob("*.hdf5")} == set(USER0)
    with pytest.raises(DownloadError, match="--users 777: no official split file names"):
        select([], ["777"])


def test_cli_subset_then_check_names_what_is_missing(release, tmp_path):
    server, files = release
    dest, own = tmp_path / "data", tmp_path / "mine.yaml"
    own.write_text(yaml.safe_dump({"dataset": {"train": [{"user": 777, "session": OTHERS[1]}]}}))

    def cli(*args):
        return _cli(*args, timeout=120)

    proc = cli(
        "emg2qwerty",
        "--dest",
        str(dest),
        "--mirror",
        server.url,
        "--split",
        str(own),
        "--split",
        "user0",
    )
    assert proc.returncode == 0, proc.stderr
    assert "sessions found: 15 of 15 wanted" in proc.stdout
    assert "split mine: complete (1 sessions)" in proc.stdout
    assert (dest / "splits/mine.yaml").read_bytes() == own.read_bytes()
    assert cli("check", str(dest), "--split", "user0").returncode == 0
    (dest / f"{USER0[3]}.hdf5").unlink()
    proc = cli("check", str(dest), "--split", "user0")
    assert proc.returncode == 1 and f"missing {USER0[3]}" in proc.stdout
    assert "split user0: 1 of 14 missing" in proc.stdout
    assert proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1
    proc = cli("check", str(dest))  # no metadata.csv: what the subset downloads asked for
    assert proc.returncode == 1 and f"missing {USER0[3]}" in proc.stdout
    assert (
        cli(
            "emg2qwerty", "--dest", str(dest), "--mirror", server.url, "--users", USER0_ID
        ).returncode
        == 0
    )
    assert cli("check", str(dest), "--split", "user0").returncode == 0


def test_an_absent_session_is_named_and_the_rest_stay_published(
    release, tmp_path, stream_positions
):
    server, files = release
    ghost = "2021-09-09-1631000000-keystrokes-not-in-the-archive"
    split = tmp_path / "ghost.yaml"
    entries = [{"user": 1, "session": s} for s in [USER0[0], ghost, USER0[9]]]
    split.write_text(yaml.safe_dump({"dataset": {"train": entries}}))
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=f"holds no session {ghost} .split ghost.") as info:
        download_subset(dest, select([str(split)], []), mirror=server.url, options=OPTS)
    assert "2 wanted member(s) it holds are published and verified" in str(info.value)
    assert_published_and_verified(dest, files, [USER0[0], USER0[9]])
    ((read, total),) = stream_positions
    assert read == total  # the whole archive streamed past: its sha256 is recorded
    record = json.loads((dest / MANIFEST).read_text())[SUBSET_RECORD]
    assert record["archive_sha256"] == hashlib.sha256(server.files[ARCHIVE]).hexdigest()
    assert not (dest / ".extract.part").exists()


def kill_mid_stream(monkeypatch, at_byte: int):
    real = subset_module.ArchiveStream.readinto

    def readinto(self, buffer):
        if self.position >= at_byte:
            raise KeyboardInterrupt
        return real(self, buffer)

    monkeypatch.setattr(subset_module.ArchiveStream, "readinto", readinto)


def kill_at_rename(monkeypatch, nth: int, after: bool):
    """Kill at the nth session's rename into place, just before or just after it."""
    real, count = os.replace, []

    def replace(src, dst):
        if str(dst).endswith(".hdf5"):
            count.append(dst)
            if len(count) == nth and not after:
                raise KeyboardInterrupt
            real(src, dst)
            if len(count) == nth:
                raise KeyboardInterrupt
        else:
            real(src, dst)

    monkeypatch.setattr(subset_module.os, "replace", replace)


@pytest.mark.parametrize("point", ["mid-stream", "before-rename", "after-rename"])
def test_killed_then_rerun_ends_with_identical_files(release, tmp_path, monkeypatch, point):
    server, files = release
    reference = tmp_path / "reference"
    download_subset(reference, select(["user0"], []), mirror=server.url, options=OPTS)

    dest = tmp_path / "data"
    with monkeypatch.context() as m:
        if point == "mid-stream":
            kill_mid_stream(m, 300_000)  # after some user0 sessions, before all
        else:
            kill_at_rename(m, nth=5, after=point == "after-rename")
        with pytest.raises(KeyboardInterrupt):
            download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert not (dest / ".extract.part").exists()
    published_before = len(list(dest.glob("*.hdf5")))
    assert 0 < published_before < len(USER0)
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert tree(dest) == tree(reference)

    def sizes_and_hashes(d):
        return {k: (v["size"], v["sha256"]) for k, v in members(d).items()}

    assert sizes_and_hashes(dest) == sizes_and_hashes(reference)
    assert_published_and_verified(dest, files, USER0)


def test_a_dropped_connection_resumes_with_range_within_the_run(release, tmp_path):
    server, files = release
    cut = 300_000
    server.cut_after[ARCHIVE] = cut
    retrying = FetchOptions(timeout=5.0, retries=1, progress=False)
    dest = tmp_path / "data"
    download_subset(dest, select(["user0"], []), mirror=server.url, options=retrying)
    assert server.ranges == [(ARCHIVE, f"bytes={cut}-")]
    assert_published_and_verified(dest, files, USER0)


def test_a_drop_is_not_resumed_when_the_server_names_no_version(release, tmp_path):
    server, _ = release
    server.cut_after[ARCHIVE] = 300_000
    server.no_validators.add(ARCHIVE)
    retrying = FetchOptions(timeout=5.0, retries=1, progress=False)
    with pytest.raises(DownloadError, match="names no version to resume it safely"):
        download_subset(tmp_path / "d", select(["user0"], []), server.url, retrying)
    assert server.ranges == []


def test_a_drop_without_retries_is_one_line_and_the_rerun_completes(release, tmp_path):
    server, files = release
    server.cut_after[ARCHIVE] = 300_000  # after some user0 sessions, before all
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match="connection lost after .*published members are kept"):
        download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    kept = {p.name: p.stat().st_mtime_ns for p in dest.glob("*.hdf5")}
    assert kept
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert_published_and_verified(dest, files, USER0)
    assert all((dest / name).stat().st_mtime_ns == t for name, t in kept.items())  # not rewritten


def test_a_file_of_ones_own_is_never_replaced(release, tmp_path):
    server, _ = release
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / f"{USER0[2]}.hdf5").write_text("my own file")
    with pytest.raises(DownloadError, match="did not create it; move it away"):
        download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert (dest / f"{USER0[2]}.hdf5").read_text() == "my own file" and server.gets == []


@pytest.mark.parametrize(
    "extra, error, reason",
    [
        ([("../evil", "")], UnsafeArchiveError, "outside the destination"),  # unwanted, refused
        ([(f"{TOP}/up", "..")], UnsafeArchiveError, "only links down"),
        ([(f"{TOP}/{USER0[0]}.hdf5x", "/etc/passwd")], UnsafeArchiveError, "absolute path"),
    ],
)
def test_a_hostile_archive_is_still_refused(tmp_path, extra, error, reason):
    data, _ = build_release(tmp_path, extra)
    server = FileServer({ARCHIVE: data})
    try:
        dest = tmp_path / "data"
        ghost = tmp_path / "ghost.yaml"  # wants a session the archive lacks: it reads to the end
        ghost.write_text(yaml.safe_dump({"dataset": {"test": [{"user": 1, "session": "nope"}]}}))
        with pytest.raises(error, match=reason):
            download_subset(dest, select([str(ghost)], []), mirror=server.url, options=OPTS)
        assert not any(p.is_symlink() for p in dest.rglob("*"))
        assert not (tmp_path / "evil").exists() and not (dest / ".extract.part").exists()
    finally:
        server.close()


def test_a_wanted_name_that_is_a_link_or_a_bomb_is_refused(tmp_path):
    data, _ = build_release(tmp_path, [(f"{TOP}/wanted.hdf5", "other.hdf5")])
    server = FileServer({ARCHIVE: data})
    try:
        wants = tmp_path / "wants.yaml"
        wants.write_text(yaml.safe_dump({"dataset": {"test": [{"user": 1, "session": "wanted"}]}}))
        with pytest.raises(MalformedArchiveError, match="wanted session but is not a regular"):
            download_subset(tmp_path / "d", select([str(wants)], []), server.url, OPTS)
        assert not (tmp_path / "d" / "wanted.hdf5").exists()
        # the caps are checked on every header, wanted or not
        with pytest.raises(UnsafeArchiveError, match="max_members"):
            with pytest.MonkeyPatch.context() as m:
                m.setattr(subset_module, "MAX_MEMBERS", 5)
                download_subset(tmp_path / "e", select([str(wants)], []), server.url, OPTS)
    finally:
        server.close()


def test_a_206_to_the_whole_archive_is_refused(tmp_path):
    server = Scripted()
    try:
        server.script = lambda h: head(
            h, "206 Partial Content", Content_Length=10, Content_Range="bytes 0-9/100"
        )
        with pytest.raises(DownloadError, match="request for the whole file with HTTP 206"):
            download_subset(tmp_path / "d", select(["user0"], []), server.url, OPTS)
        assert [p.name for p in (tmp_path / "d").glob("*.hdf5")] == []
    finally:
        server.close()


def test_an_archive_of_another_size_than_recorded_is_refused(release, tmp_path):
    server, _ = release
    dest = tmp_path / "data"
    download_subset(dest, select([str(_one_session_split(tmp_path))], []), server.url, OPTS)
    server.files[ARCHIVE] += b"\0" * 10  # another size than the recorded one
    with pytest.raises(DownloadError, match="the file is pinned at"):
        download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert len(list(dest.glob("*.hdf5"))) == 1


def _one_session_split(tmp: Path) -> Path:
    path = tmp / "one.yaml"
    path.write_text(yaml.safe_dump({"dataset": {"val": [{"user": 1, "session": USER0[1]}]}}))
    return path


@pytest.mark.parametrize("session", ["../x", "sub/x", ".."])
def test_a_split_naming_a_path_is_refused(tmp_path, session):
    split = tmp_path / "bad.yaml"
    split.write_text(yaml.safe_dump({"dataset": {"train": [{"user": 1, "session": session}]}}))
    with pytest.raises(DownloadError, match="is not a file name"):
        select([str(split)], [])


def test_unknown_split_name_lists_the_shipped_ones():
    with pytest.raises(DownloadError, match="no shipped split 'user9'.*few-users-16"):
        select(["user9"], [])


def test_data_download_imports_only_semgkit_format_and_split_rules():
    for path in (ROOT / "data_download").glob("*.py"):
        found = set(re.findall(r"^\s*(?:from|import) (semgkit[\w.]*)", path.read_text(), re.M))
        allowed = {"semgkit.format", "semgkit.split_rules"} | (
            {"semgkit.pose_format"} if path.stem == "emg2pose" else set()
        )
        assert found <= allowed, path.name


def test_a_drip_or_a_body_past_its_length_ends_with_one_line(tmp_path):
    data, _ = build_release(tmp_path)
    server = Scripted()
    try:
        server.script = lambda h: drip(h, every_s=0.05, body=data)
        slow = FetchOptions(timeout=5.0, retries=0, progress=False, min_rate=100, rate_window=0.5)
        with pytest.raises(DownloadError, match="slower than --min-rate 100 B/s"):
            download_subset(tmp_path / "d", select(["user0"], []), server.url, slow)

        def longer(h):  # announces the archive's length, then keeps sending (chunked)
            head(h, "200 OK", ETag='"v1"', Content_Length=len(data), Transfer_Encoding="chunked")
            for chunk in (data, b"x" * 100_000):
                h.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")

        server.script = longer
        ghost = tmp_path / "ghost.yaml"  # wants a session the archive lacks: it reads to the end
        ghost.write_text(yaml.safe_dump({"dataset": {"test": [{"user": 1, "session": "nope"}]}}))
        with pytest.raises(DownloadError, match=f"sent more than the {len(data)} bytes"):
            download_subset(tmp_path / "e", select([str(ghost)], []), server.url, OPTS)
    finally:
        server.close()


def test_a_full_download_after_a_subset_and_a_subset_after_it(release, tmp_path):
    from data_download import emg2qwerty as e2q
    from semgkit.data import load_split

    server, files = release
    dest = tmp_path / "data"
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert [p.stem for p in load_split(dest, "user0").test] == USER0[-2:]  # the book reads it
    for name in e2q.SPLIT_NAMES:  # (the mirror serves the split files the full download wants)
        server.files[f"{name}.yaml"] = shipped.path(name).read_bytes()
    e2q.download(dest, mirror=server.url, options=OPTS)  # may replace what the subset published
    rep = e2q.report(dest, progress=False)
    assert (rep.found, rep.missing, rep.unreadable, rep.split_missing["user0"]) == (18, [], {}, 0)
    assert {p.name for p in dest.glob("*.hdf5")} == set(files)
    gets = len(server.gets)
    download_subset(dest, select(["user0"], [USER0_ID]), server.url, OPTS)
    assert len(server.gets) == gets  # everything wanted is there already: no request


def test_a_damaged_member_is_extracted_again_and_a_damaged_record_named(release, tmp_path, capsys):
    server, files = release
    dest = tmp_path / "data"
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    victim = dest / f"{USER0[4]}.hdf5"
    victim.write_bytes(b"\0" * victim.stat().st_size)  # same size, another mtime
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    assert f"{victim} differs from what was published" in capsys.readouterr().err
    assert_published_and_verified(dest, files, USER0)

    manifest = json.loads((dest / MANIFEST).read_text())
    manifest[SUBSET_RECORD]["members"][victim.name] = {"size": "big"}
    (dest / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DownloadError, match=f"entry '{SUBSET_RECORD}' is malformed"):
        download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)


def test_sigkill_mid_download_then_rerun_ends_with_identical_files(release, tmp_path):
    """A real kill (no ``finally`` runs): staging and a recorded-but-unmoved member may be
    left behind; the rerun clears the one and re-extracts the other."""
    server, files = release
    data = server.files[ARCHIVE]

    def throttled(h):  # ~64 KiB every 20 ms: the kill lands mid-stream
        head(h, "200 OK", ETag='"v1"', Content_Length=len(data))
        for start in range(0, len(data), 1 << 16):
            h.wfile.write(data[start : start + (1 << 16)])
            h.wfile.flush()
            time.sleep(0.02)

    slow = Scripted()
    slow.script = throttled
    dest = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_download", "emg2qwerty", "--dest", str(dest)]
        + ["--mirror", slow.url, "--split", "user0", "--quiet"],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(dest.glob("*.hdf5"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        slow.close()
    assert 3 <= len(list(dest.glob("*.hdf5"))) < len(USER0)
    download_subset(dest, select(["user0"], []), mirror=server.url, options=OPTS)
    reference = tmp_path / "reference"
    download_subset(reference, select(["user0"], []), mirror=server.url, options=OPTS)
    assert tree(dest) == tree(reference)
    assert_published_and_verified(dest, files, USER0)
