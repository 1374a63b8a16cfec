"""Safe extraction of a (compressed) tar archive.

Every member is checked before it is written: no absolute path, no path that leaves the
destination, no symbolic or hard link that points outside it, no device file or FIFO.
Members land in a staging folder beside the destination and are moved into place only
after the whole archive (gzip trailer and CRC included) has been read without error, so
a truncated or hostile archive leaves nothing behind that looks extracted.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import tarfile
import zlib
from pathlib import Path

from tqdm import tqdm

from .fetch import DownloadError

STAGING = ".extract.part"


class UnsafeArchiveError(DownloadError):
    """The archive holds a member that would be written outside the destination."""


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Raise ``UnsafeArchiveError`` unless ``member`` stays inside the extraction root."""
    name = member.name
    where = f"{archive}: member {name!r}"
    if name.startswith(("/", "\\")) or posixpath.isabs(name) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{where} has an absolute path")
    if _escapes(name):
        raise UnsafeArchiveError(f"{where} would be written outside the destination")
    if member.isdev():
        raise UnsafeArchiveError(f"{where} is a device file or FIFO")
    if member.issym():
        if posixpath.isabs(member.linkname):
            raise UnsafeArchiveError(f"{where} is a symlink to the absolute path {member.linkname}")
        if _escapes(posixpath.join(posixpath.dirname(name), member.linkname)):
            raise UnsafeArchiveError(f"{where} is a symlink pointing outside the destination")
    if member.islnk() and (posixpath.isabs(member.linkname) or _escapes(member.linkname)):
        raise UnsafeArchiveError(f"{where} is a hard link pointing outside the destination")


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../")


def safe_extract(archive: Path | str, dest: Path | str, progress: bool = True) -> list[Path]:
    """Extract ``archive`` into ``dest``; a single top-level folder in the archive is
    unwrapped (its contents go straight into ``dest``). Returns the paths moved into
    ``dest``. Files named ``metadata.csv`` are moved last, so their presence means done."""
    archive, dest = Path(archive), Path(dest)
    staging = dest / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract_all(archive, staging, progress)
        return _publish(staging, dest)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DownloadError(f"{archive}: archive is truncated or malformed ({e})") from None
    except UnsafeArchiveError:
        raise
    except OSError as e:
        raise DownloadError(f"{archive}: extraction failed ({e})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_all(archive: Path, staging: Path, progress: bool) -> None:
    size = archive.stat().st_size
    with (
        open(archive, "rb") as raw,
        tarfile.open(fileobj=raw, mode="r:*") as tar,
        tqdm(
            total=size,
            desc=f"extract {archive.name}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None if progress else True,
            leave=False,
        ) as bar,
    ):
        for member in tar:
            check_member(member, archive)
            # the "data" filter is a second line of defence (it also resolves links
            # through already-extracted symlinks and drops odd permission bits)
            tar.extract(member, staging, filter="data")
            bar.update(raw.tell() - bar.n)
        # tarfile stops at the end-of-archive blocks; read on to the end of the compressed
        # stream so that a truncated gzip trailer (CRC, length) is noticed too
        while tar.fileobj.read(1 << 20):
            pass
        bar.update(raw.tell() - bar.n)


def _publish(staging: Path, dest: Path) -> list[Path]:
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        root = entries[0]
        entries = list(root.iterdir())
    entries.sort(key=lambda p: (p.name == "metadata.csv", p.name))
    moved = []
    for src in entries:
        target = dest / src.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(src, target)
        moved.append(target)
    return moved
