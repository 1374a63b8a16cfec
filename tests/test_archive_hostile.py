"""safe_extract against crafted archives: names that collide with what is already in the
destination, members that repeat, and tar and gzip bombs. Nothing the archive did not
create may be replaced or deleted, and a cap must fire before the disk fills."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from data_download import archive as archive_module
from data_download import safe_extract
from data_download.archive import CollisionError, MalformedArchiveError, UnsafeArchiveError

ROOT = Path(__file__).resolve().parent.parent


def tar_gz(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name in dirs:
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def dest(tmp_path) -> Path:
    """A destination that already holds a user's work."""
    d = tmp_path / "dest"
    (d / "mywork").mkdir(parents=True)
    (d / "mywork" / "thesis.tex").write_text("years of work")
    (d / "notes.txt").write_text("mine")
    return d


@pytest.mark.parametrize(
    "member, clashes_with",
    [
        ("top/mywork/evil.txt", "mywork"),  # used to rmtree the user's folder
        ("top/notes.txt", "notes.txt"),  # used to replace the user's file
        ("mywork", "mywork"),  # a flat archive: no top folder
    ],
)
def test_a_member_named_like_an_existing_file_or_folder_is_refused(
    tmp_path, dest, member, clashes_with
):
    files = {member: b"pwned"} if member != "mywork" else {"mywork": b"x", "other": b"y"}
    if "/" in member:
        files["top/fine.txt"] = b"ok"
    archive = tar_gz(tmp_path / "a.tar.gz", files)
    before = tree(dest)
    with pytest.raises(CollisionError) as info:
        safe_extract(archive, dest, progress=False)
    message = str(info.value)
    assert f"member {member!r}" in message and str(dest / clashes_with) in message
    assert "did not create" in message
    assert not isinstance(info.value, MalformedArchiveError)  # the archive is fine: kept
    assert tree(dest) == before


def test_an_extraction_may_replace_only_the_files_an_earlier_one_created(tmp_path, dest):
    first = tar_gz(tmp_path / "v1.tar.gz", {"top/a.hdf5": b"v1", "top/metadata.csv": b"s"})
    moved = safe_extract(first, dest, progress=False)
    second = tar_gz(tmp_path / "v2.tar.gz", {"top/a.hdf5": b"v2", "top/metadata.csv": b"t"})
    with pytest.raises(CollisionError, match="a.hdf5"):
        safe_extract(second, dest, progress=False)  # not told the names are ours
    safe_extract(second, dest, progress=False, replaceable={p.name for p in moved})
    assert (dest / "a.hdf5").read_bytes() == b"v2"
    assert (dest / "mywork" / "thesis.tex").read_text() == "years of work"
    # a folder is never replaced, even one with a name an earlier extraction used
    folder = tar_gz(tmp_path / "v3.tar.gz", {"top/a.hdf5/x": b"v3"})
    with pytest.raises(CollisionError, match="a.hdf5"):
        safe_extract(folder, dest, progress=False, replaceable={"a.hdf5"})


def test_a_member_that_appears_twice_is_refused(tmp_path):
    path = tmp_path / "twice.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for data in (b"first", b"second"):
            info = tarfile.TarInfo("top/x.hdf5")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(UnsafeArchiveError, match="member 'top/x.hdf5' appears twice"):
        safe_extract(path, d, progress=False)
    assert list(d.iterdir()) == []


def zeros_bomb(path: Path, size: int) -> Path:
    """A real gzip bomb: one member of ``size`` zero bytes, compressed ~1,000x."""
    info = tarfile.TarInfo("top/bomb.hdf5")
    info.size = size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    out = [packer.compress(header)]
    block = bytes(1 << 20)
    for _ in range(size >> 20):
        out.append(packer.compress(block))
    out.append(packer.compress(bytes(1024)))  # end-of-archive blocks
    out.append(packer.flush())
    path.write_bytes(b"".join(out))
    return path


def test_a_gzip_bomb_is_refused_by_the_ratio_cap_before_writing(tmp_path, monkeypatch):
    archive = zeros_bomb(tmp_path / "bomb.tar.gz", 64 << 20)
    assert archive.stat().st_size < (64 << 20) / 500  # a real ~1,000x bomb
    asked = []
    monkeypatch.setattr(archive_module, "check_free_space", lambda *a: asked.append(a))
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"100x the archive's [\d,]+ \(max_ratio\)"):
        safe_extract(archive, d, progress=False)
    assert asked == []  # refused on the member's header: not a byte written, no disk blamed
    assert list(d.iterdir()) == []
    # an honest caller who knows the archive is genuine can raise the cap
    monkeypatch.undo()
    safe_extract(archive, d, progress=False, max_ratio=2000)
    assert (d / "bomb.hdf5").stat().st_size == 64 << 20


def test_a_declared_size_past_the_caps_costs_nothing(tmp_path):
    """A header that claims 2 TiB is refused before anything is read past it."""
    info = tarfile.TarInfo("top/huge.hdf5")
    info.size = 2 << 40
    path = tmp_path / "claims.tar.gz"
    path.write_bytes(zlib.compress(info.tobuf(format=tarfile.GNU_FORMAT), wbits=31))
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"more than 1,099,511,627,776 .*max_bytes"):
        safe_extract(path, d, progress=False, max_ratio=1e12)  # the 1 TiB cap
    with pytest.raises(UnsafeArchiveError, match=r"\(max_ratio\) at member 'top/huge.hdf5'"):
        safe_extract(path, d, progress=False, max_bytes=4 << 40)
    assert list(d.iterdir()) == []


def test_a_collision_in_the_dataset_command_keeps_the_archive_for_a_rerun(tmp_path):
    """Through ``python -m data_download emg2qwerty``: one line naming both, exit 1, the
    user's folder intact and the archive kept, so the rerun does not download it again."""
    from data_download import emg2qwerty as e2q
    from tests.test_download import SESSIONS, FileServer, build_archive, split_yaml

    (tmp_path / "build").mkdir()
    srv = FileServer({"emg2qwerty-data-2021-08.tar.gz": build_archive(tmp_path / "build")})
    srv.files.update({f"{n}.yaml": split_yaml(SESSIONS) for n in e2q.SPLIT_NAMES})
    dest = tmp_path / "data"
    clash = dest / "metadata.csv"
    clash.mkdir(parents=True)
    (clash / "keep.txt").write_text("mine")
    try:
        cmd = [sys.executable, "-m", "data_download", "emg2qwerty", "--dest", str(dest)]
        cmd += ["--mirror", srv.url, "--quiet"]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1
        assert "member 'emg2qwerty-data-2021-08/metadata.csv'" in proc.stderr
        assert f"would replace {clash}, which data_download did not create" in proc.stderr
        assert (clash / "keep.txt").read_text() == "mine"
        assert (dest / "emg2qwerty-data-2021-08.tar.gz").is_file()
        assert not list(dest.glob("*.hdf5"))
        (clash / "keep.txt").rename(tmp_path / "keep.txt")
        clash.rmdir()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert srv.gets.count("emg2qwerty-data-2021-08.tar.gz") == 1
    finally:
        srv.close()
