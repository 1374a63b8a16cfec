"""Safe extraction of a (compressed) tar archive.

Every member is checked before it is written: no absolute path, no path that leaves the
destination, no device file or FIFO, no hard link to a path outside the archive, and only
symbolic links that point *down* (relative, no ``..``). A downward link stays inside the
destination wherever it finally lives, also after the archive's top folder is unwrapped
and whatever other links it passes through; a link like ``top/up -> ..`` would pass a
check made inside ``top/`` and leave the destination once ``top/`` is unwrapped.
The member count and the total unpacked size are capped (defaults ~10x and ~3x the
emg2qwerty release), and free disk is checked before each file.
Members land in a staging folder inside the destination and are moved into place only
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

from .fetch import MANIFEST, PART_SUFFIXES, DownloadError, check_free_space, load_manifest

STAGING = ".extract.part"
# emg2qwerty-data-2021-08: 1,136 members (1,135 sessions + metadata.csv, and the top
# folder), ~339 GB unpacked (estimate in docs/real_data.md). The caps stop a tar or gzip
# bomb long before it fills a disk, and leave room for a larger genuine release.
MAX_MEMBERS = 10_000
MAX_BYTES = 1 << 40  # 1 TiB


class MalformedArchiveError(DownloadError):
    """The archive cannot be used as it is: truncated, corrupt, hostile or over the caps.
    Resuming the download will not repair it (unlike a full disk)."""


class UnsafeArchiveError(MalformedArchiveError):
    """The archive holds a member that would be written, or point, outside the destination,
    or more members or bytes than the caps allow."""


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
    link = member.linkname
    if member.issym():
        if posixpath.isabs(link):
            raise UnsafeArchiveError(f"{where} is a symlink to the absolute path {link}")
        if ".." in link.split("/") or posixpath.normpath(link or ".") == ".":
            raise UnsafeArchiveError(
                f"{where} is a symlink to {link!r}: only links down into their own folder "
                f"are allowed (one that climbs could leave the destination once unpacked)"
            )
    if member.islnk() and (posixpath.isabs(link) or _escapes(link)):
        raise UnsafeArchiveError(f"{where} is a hard link pointing outside the destination")


def _escapes(relative: str) -> bool:
    normal = posixpath.normpath(relative)
    return normal == ".." or normal.startswith("../")


def safe_extract(
    archive: Path | str,
    dest: Path | str,
    progress: bool = True,
    *,
    max_members: int = MAX_MEMBERS,
    max_bytes: int = MAX_BYTES,
) -> list[Path]:
    """Extract ``archive`` into ``dest``; a single top-level folder in the archive is
    unwrapped (its contents go straight into ``dest``). Returns the paths moved into
    ``dest``. Files named ``metadata.csv`` are moved last, so their presence means done.
    Raises ``MalformedArchiveError`` for an archive that is bad in itself, and plain
    ``DownloadError`` for a local failure (disk full, permissions) worth retrying."""
    archive, dest = Path(archive), Path(dest)
    staging = dest / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract_all(archive, staging, progress, max_members, max_bytes)
        return _publish(staging, dest, archive)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise MalformedArchiveError(f"{archive}: archive is truncated or malformed ({e})") from None
    except OSError as e:
        raise DownloadError(f"{archive}: extraction failed ({e})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_all(
    archive: Path, staging: Path, progress: bool, max_members: int, max_bytes: int
) -> None:
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
        members = unpacked = 0
        for member in tar:
            check_member(member, archive)
            members += 1
            unpacked += member.size if member.isreg() else 0
            for count, cap, what in (
                (members, max_members, "members (max_members)"),
                (unpacked, max_bytes, "unpacked bytes (max_bytes)"),
            ):
                if count > cap:
                    raise UnsafeArchiveError(
                        f"{archive}: more than {cap:,} {what}; refusing a possible tar bomb "
                        f"(safe_extract() takes a higher cap for a genuine archive)"
                    )
            if member.isreg():
                check_free_space(staging, member.size, f"{archive.name}: member {member.name}")
            # the "data" filter is a second line of defence (it also resolves links
            # through already-extracted symlinks and drops odd permission bits)
            tar.extract(member, staging, filter="data")
            bar.update(raw.tell() - bar.n)
        # tarfile stops at the end-of-archive blocks; read on to the end of the compressed
        # stream so that a truncated gzip trailer (CRC, length) is noticed too
        while tar.fileobj.read(1 << 20):
            pass
        bar.update(raw.tell() - bar.n)


def _publish(staging: Path, dest: Path, archive: Path) -> list[Path]:
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        root = entries[0]
        entries = list(root.iterdir())
    # never let the archive replace data_download's own files: the manifest, the files it
    # downloaded into dest (the archive itself, splits/), or a download in progress
    kept = {MANIFEST, STAGING, archive.name} | {k.split("/")[0] for k in load_manifest(dest)}
    for src in entries:
        if src.name in kept or src.name.endswith(PART_SUFFIXES):
            raise UnsafeArchiveError(
                f"{archive}: member {src.name!r} would replace {dest / src.name}, "
                f"which data_download keeps"
            )
    entries.sort(key=lambda p: (p.name == "metadata.csv", p.name))
    moved = []
    for src in entries:
        target = dest / src.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(src, target)
        moved.append(target)
    return moved
