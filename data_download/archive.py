"""Safe extraction of a (compressed) tar archive.

Every member is checked before it is written: no absolute path, no path that leaves the
destination, no device file or FIFO, no hard link to a path outside the archive, and only
symbolic links that point *down* (relative, no ``..``). A downward link stays inside the
destination wherever it finally lives, also after the archive's top folder is unwrapped
and whatever other links it passes through; a link like ``top/up -> ..`` would pass a
check made inside ``top/`` and leave the destination once ``top/`` is unwrapped.
The member count, the total unpacked size and its ratio to the archive's size are capped
(defaults ~10x and ~3x the emg2qwerty release, 100x compression): the sizes are read from
each member's header before its bytes are written, so a tar or gzip bomb is refused
naming the cap before the disk fills. Free disk is checked before each file.
Members land in a staging folder inside the destination and are moved into place only
after the whole archive (gzip trailer and CRC included) has been read without error, so
a truncated or hostile archive leaves nothing behind that looks extracted. Nothing in
the destination is replaced or deleted unless an earlier extraction created it (the
caller says which names): a member named like a user's file or folder is an error
naming both, raised as soon as the member is read and checked again before publishing.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import shutil
import tarfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .fetch import MANIFEST, PART_SUFFIXES, DownloadError, check_free_space, load_manifest

STAGING = ".extract.part"
# emg2qwerty-data-2021-08: 1,136 members (1,135 sessions + metadata.csv, and the top
# folder), ~339 GB unpacked (estimate in docs/real_data.md). The caps stop a tar or gzip
# bomb long before it fills a disk, and leave room for a larger genuine release.
MAX_MEMBERS = 10_000
MAX_BYTES = 1 << 40  # 1 TiB
# Unpacked bytes per archive byte. sEMG in float32 barely compresses (the release is
# estimated at ~1.1x); deflate cannot exceed ~1,032x, which a bomb of zeros approaches.
MAX_RATIO = 100.0


class MalformedArchiveError(DownloadError):
    """The archive cannot be used as it is: truncated, corrupt, hostile or over the caps.
    Resuming the download will not repair it (unlike a full disk)."""


class UnsafeArchiveError(MalformedArchiveError):
    """The archive holds a member that would be written, or point, outside the destination,
    or more members or bytes than the caps allow."""


class CollisionError(DownloadError):
    """A member would replace a file or folder in the destination that no earlier
    extraction created. The archive is fine: move the other one away and rerun."""


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
    max_ratio: float = MAX_RATIO,
    replaceable: Collection[str] = (),
) -> list[Path]:
    """Extract ``archive`` into ``dest``; a single top-level folder in the archive is
    unwrapped (its contents go straight into ``dest``). Returns the paths moved into
    ``dest``. Files named ``metadata.csv`` are moved last, so their presence means done.

    ``replaceable``: top-level names in ``dest`` an earlier extraction created; those
    (files only) may be replaced, any other existing name is a ``CollisionError``.
    Raises ``MalformedArchiveError`` for an archive that is bad in itself, and plain
    ``DownloadError`` for a local failure (disk full, permissions) worth retrying."""
    archive, dest = Path(archive), Path(dest)
    caps = _Caps(max_members, max_bytes, max_ratio, archive.stat().st_size)
    # the manifest, the files data_download downloaded into dest (the archive itself,
    # splits/) and downloads in progress are never replaced (nor are *.part names)
    kept = {MANIFEST, STAGING, archive.name} | {k.split("/")[0] for k in load_manifest(dest)}
    layout = _Layout(dest, archive, set(replaceable), kept)
    staging = dest / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract_all(archive, staging, progress, caps, layout)
        return _publish(staging, dest, archive, layout)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise MalformedArchiveError(f"{archive}: archive is truncated or malformed ({e})") from None
    except OSError as e:
        raise DownloadError(f"{archive}: extraction failed ({e})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class _Caps:
    """The limits on what an archive may unpack to, checked on each member's header."""

    max_members: int
    max_bytes: int
    max_ratio: float
    compressed: int  # the archive's size in bytes
    members: int = 0
    unpacked: int = 0

    def admit(self, member: tarfile.TarInfo, archive: Path) -> None:
        self.members += 1
        self.unpacked += member.size if member.isreg() else 0
        ratio_cap = int(self.max_ratio * self.compressed)
        for count, cap, what in (
            (self.members, self.max_members, "members (max_members)"),
            (self.unpacked, self.max_bytes, "unpacked bytes (max_bytes)"),
            (
                self.unpacked,
                ratio_cap,
                f"unpacked bytes, {self.max_ratio:g}x the archive's {self.compressed:,} (max_ratio)",
            ),
        ):
            if count > cap:
                raise UnsafeArchiveError(
                    f"{archive}: more than {cap:,} {what} at member {member.name!r}; "
                    f"refusing a possible tar or gzip bomb before writing it "
                    f"(safe_extract() takes a higher cap for a genuine archive)"
                )


@dataclass
class _Layout:
    """Where members will land in ``dest``: one name per member (a second member of the
    same name is refused) and, with the top folder unwrapped as it usually is, the
    top-level name each member would claim in ``dest``."""

    dest: Path
    archive: Path
    replaceable: set[str]
    kept: set[str]  # data_download's own files in dest: never replaced
    names: set[str] = field(default_factory=set)
    top: str | None = None  # the single top-level folder so far (None: none, or several)
    flat: bool = False  # seen a second top-level entry: nothing is unwrapped

    def claim(self, member: tarfile.TarInfo) -> None:
        name = posixpath.normpath(member.name).strip("/")
        if name in self.names and not member.isdir():
            raise UnsafeArchiveError(f"{self.archive}: member {member.name!r} appears twice")
        self.names.add(name)
        parts = name.split("/")
        if self.top is None and not self.flat and (len(parts) > 1 or member.isdir()):
            self.top = parts[0]
        if parts[0] != self.top:
            self.top, self.flat = None, True
        landing = parts[0] if self.flat else (parts[1] if len(parts) > 1 else None)
        if landing is not None:
            self.check(member.name, self.dest / landing, member.isdir() and len(parts) == 2)

    def check(self, member_name: str, target: Path, is_dir: bool) -> None:
        """Refuse a member that would land on data_download's own files, or on anything
        in ``dest`` that is not a file or link an earlier extraction created."""
        if target.name in self.kept or target.name.endswith(PART_SUFFIXES):
            raise UnsafeArchiveError(
                f"{self.archive}: member {member_name!r} would replace {target}, "
                f"which data_download keeps"
            )
        if not os.path.lexists(target):
            return
        a_folder = target.is_dir() and not target.is_symlink()
        if is_dir or a_folder or target.name not in self.replaceable:
            raise CollisionError(
                f"{self.archive}: member {member_name!r} would replace {target}, which "
                f"data_download did not create; move it away (or extract elsewhere) and rerun"
            )


def _extract_all(
    archive: Path, staging: Path, progress: bool, caps: _Caps, layout: _Layout
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
        for member in tar:
            check_member(member, archive)
            caps.admit(member, archive)
            layout.claim(member)
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


def _publish(staging: Path, dest: Path, archive: Path, layout: _Layout) -> list[Path]:
    entries = list(staging.iterdir())
    prefix = ""
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        root = entries[0]
        prefix = f"{root.name}/"
        entries = list(root.iterdir())
    for src in entries:  # all checked before the first move: a clash moves nothing
        is_dir = src.is_dir() and not src.is_symlink()
        layout.check(prefix + src.name, dest / src.name, is_dir)
    entries.sort(key=lambda p: (p.name == "metadata.csv", p.name))
    moved = []
    for src in entries:
        target = dest / src.name
        os.replace(src, target)
        moved.append(target)
    return moved
