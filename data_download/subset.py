"""Part of emg2qwerty: the sessions some splits or users name, streamed out of the archive.

The archive is read as a stream (:class:`data_download.stream.ArchiveStream` -> gzip ->
tar) and never stored. Every member's header is checked like a full extraction's
(:func:`archive.check_member`, the member, byte and ratio caps); members not wanted are
read past without writing a byte; a wanted one is written into ``DEST/.extract.part/``,
checked (its length, and that it opens as an emg2qwerty session) and published with a
rename, its size and sha256 recorded in the manifest first. The transfer stops once the
last wanted member is published; in the worst case (a wanted member at the end, or a
session the archive does not hold) the whole archive streams past, and then the gzip CRC
is checked and the archive's sha256 recorded. A rerun skips published members whose
size and mtime match the record (``--verify``: re-hashed) and reads the stream from byte
0 again, writing nothing until a missing member (see :mod:`.stream` for why).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import shutil
import sys
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from . import shipped
from .archive import (
    MAX_BYTES,
    MAX_MEMBERS,
    MAX_RATIO,
    STAGING,
    CollisionError,
    MalformedArchiveError,
    UnsafeArchiveError,
    _Caps,
    check_member,
)
from .emg2qwerty import (
    ARCHIVE_NAME,
    ARCHIVE_URL,
    SUBSET_RECORD,
    read_session_attrs,
    split_sessions,
)
from .fetch import (
    DownloadError,
    FetchOptions,
    check_free_space,
    load_manifest,
    sha256_file,
    update_manifest,
)
from .stream import RERUN, ArchiveStream


@dataclass
class Selection:
    """What a subset wants: the split files to place in ``DEST/splits/`` and, per label
    (``split NAME`` or ``user ID``), the sessions it names."""

    split_files: dict[str, Path] = field(default_factory=dict)  # name -> source file
    named: dict[str, list[str]] = field(default_factory=dict)  # label -> sessions

    @property
    def sessions(self) -> dict[str, str]:
        """Session -> the first label naming it."""
        out: dict[str, str] = {}
        for label, sessions in self.named.items():
            for session in sessions:
                out.setdefault(session, label)
        return out


def resolve_split(arg: str, data_dir: Path | None = None) -> tuple[str, Path]:
    """``--split NAME|FILE.yaml`` -> (split name, file): a path, ``DATA/splits/NAME.yaml``
    when ``data_dir`` holds one, else the shipped split of that name."""
    if arg.endswith((".yaml", ".yml")) or "/" in arg or os.sep in arg:
        if not Path(arg).is_file():
            raise DownloadError(f"--split {arg}: no such file")
        return Path(arg).stem, Path(arg)
    local = data_dir / "splits" / f"{arg}.yaml" if data_dir else None
    if local is not None and local.is_file():
        return arg, local
    try:
        return arg, shipped.path(arg)
    except ValueError as e:
        raise DownloadError(f"--split {e} (or give a FILE.yaml)") from None


def select(splits: list[str], users: list[str], data_dir: Path | None = None) -> Selection:
    """The sessions ``--split`` and ``--users`` name; an error names a bad split file,
    session name or user."""
    selection = Selection()
    for arg in splits:
        name, source = resolve_split(arg, data_dir)
        in_data_dir = data_dir is not None and source.parent == data_dir / "splits"
        if name in shipped.SHIPPED and not in_data_dir:
            if source.read_bytes() != shipped.path(name).read_bytes():
                raise DownloadError(
                    f"--split {arg}: named like the shipped split {name!r} but different; "
                    f"rename the file"
                )
        try:
            parts = split_sessions(source)
        except ValueError as e:
            raise DownloadError(str(e)) from None
        sessions = [s for part in parts.values() for s in part]
        for session in sessions:
            if "/" in session or "\\" in session or session in ("", ".", ".."):
                raise DownloadError(f"{source}: session {session!r} is not a file name")
        selection.split_files[name] = source
        selection.named[f"split {name}"] = sessions
    if users:
        owner = shipped.session_users()
        for user in users:
            sessions = sorted(s for s, u in owner.items() if u == str(user))
            if not sessions:
                raise DownloadError(
                    f"--users {user}: no official split file names this user (they name "
                    f"104 of the release's 108 users); list its sessions in a split file "
                    f"and pass --split FILE.yaml"
                )
            selection.named[f"user {user}"] = sessions
    return selection


# ---------------------------------------------------------------- download


def download_subset(
    dest: Path | str,
    selection: Selection,
    mirror: str | None = None,
    options: FetchOptions | None = None,
) -> Path:
    """Place the selection's split files in ``DEST/splits/`` and stream its sessions out of
    the archive into ``DEST``; returns ``dest``. A session the archive does not hold is a
    ``DownloadError`` naming it, raised after every member it does hold is published."""
    dest, opts = Path(dest), options or FetchOptions()
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"--dest {dest} exists and is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    for name, source in selection.split_files.items():
        _place_split_file(dest, name, source)
    manifest = load_manifest(dest)
    record = _record(dest, manifest)
    record["wanted"] = {**record["wanted"], **selection.sessions}
    update_manifest(dest, SUBSET_RECORD, record)
    full = set((manifest.get(f"extracted:{ARCHIVE_NAME}") or {}).get("names", []))
    todo = {
        f"{s}.hdf5"
        for s in selection.sessions
        if not _published(dest, f"{s}.hdf5", record, full, opts.verify)
    }
    if not todo:
        return dest
    url = f"{mirror.rstrip('/')}/{ARCHIVE_NAME}" if mirror else ARCHIVE_URL
    size = (manifest.get(ARCHIVE_NAME) or {}).get("size") or record.get("total")
    staging = dest / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _stream(url, dest, todo, record, opts, size)
    except (gzip.BadGzipFile, tarfile.TarError, EOFError, zlib.error) as e:
        raise MalformedArchiveError(
            f"{url}: archive is truncated or malformed ({e}); the members published "
            f"before it are kept"
        ) from None
    except OSError as e:
        raise DownloadError(f"{e.filename or dest}: {e.strerror or e}; {RERUN}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _record(dest: Path, manifest: dict) -> dict:
    """The subset record of the manifest, checked (``{}`` parts when there is none)."""
    record = manifest.get(SUBSET_RECORD) or {}
    members = record.get("members", {}) if isinstance(record, dict) else None
    ok = (
        isinstance(members, dict)
        and isinstance(record.get("wanted", {}), dict)
        and all(
            isinstance(m, dict)
            and isinstance(m.get("size"), int)
            and isinstance(m.get("sha256"), str)
            for m in members.values()
        )
    )
    if not ok:
        raise DownloadError(
            f"{dest / '.manifest.json'}: entry {SUBSET_RECORD!r} is malformed; delete it "
            f"(and the sessions it lists) to start over"
        )
    return {"members": {}, "wanted": {}, **record}


def _published(dest: Path, file: str, record: dict, full: set[str], verify: bool) -> bool:
    """Whether ``DEST/file`` is a verified member already. A file nothing of ours wrote
    is a ``CollisionError``: it is never replaced."""
    final = dest / file
    entry = record["members"].get(file)
    if not os.path.lexists(final):
        return False
    if entry is None:
        if file in full:  # published by a full extraction (whose CRC was checked)
            return True
        raise CollisionError(
            f"{final} exists and data_download did not create it; move it away and rerun"
        )
    st = final.stat()
    if st.st_size == entry["size"] and st.st_mtime_ns == entry.get("mtime_ns") and not verify:
        return True
    if st.st_size == entry["size"] and sha256_file(final) == entry["sha256"]:
        entry["mtime_ns"] = st.st_mtime_ns  # e.g. killed between rename and record
        update_manifest(dest, SUBSET_RECORD, record)
        return True
    print(f"note: {final} differs from what was published; extracting it again", file=sys.stderr)
    return False


def _place_split_file(dest: Path, name: str, source: Path) -> None:
    """Copy a split file to ``DEST/splits/NAME.yaml`` (recorded in the manifest like a
    download); another file already there is replaced only if data_download wrote it."""
    data = source.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    relative = f"splits/{name}.yaml"
    target = dest / relative
    recorded = load_manifest(dest).get(relative)
    if target.exists() and target.read_bytes() != data and recorded is None:
        raise CollisionError(
            f"{target} exists with other contents and data_download did not write it; "
            f"move it away and rerun"
        )
    if not target.exists() or target.read_bytes() != data:
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    st = target.stat()
    entry = {"url": f"file:{source}", "size": st.st_size, "sha256": digest}
    update_manifest(dest, relative, {**entry, "mtime_ns": st.st_mtime_ns})


def _stream(
    url: str, dest: Path, todo: set[str], record: dict, opts: FetchOptions, size: int | None
) -> None:
    archive = Path(ARCHIVE_NAME)  # names the archive in check_member's messages
    wanted = {f"{s}.hdf5" for s in record["wanted"]}
    seen: set[str] = set()
    with (
        ArchiveStream(url, opts, size) as stream,
        # buffered: gzip expects full reads (a short read of its 2-byte magic is an error)
        gzip.GzipFile(fileobj=io.BufferedReader(stream, 1 << 16)) as gz,
        tarfile.open(fileobj=gz, mode="r|", bufsize=1 << 16) as tar,
    ):
        caps = _Caps(MAX_MEMBERS, MAX_BYTES, MAX_RATIO, stream.total)
        record["total"] = stream.total
        for member in tar:
            check_member(member, archive)
            caps.admit(member, archive)
            file = _session_file(member.name)
            if file not in wanted:
                continue
            if file in seen:
                raise UnsafeArchiveError(f"{archive}: member {member.name!r} appears twice")
            seen.add(file)
            if not member.isreg():
                raise MalformedArchiveError(
                    f"{archive}: member {member.name!r} names a wanted session but is not "
                    f"a regular file"
                )
            if file in todo:
                _publish(tar, member, dest, file, record)
                todo.discard(file)
                if not todo:
                    return  # every wanted member is published: stop the transfer
        while gz.read(1 << 20):  # on to the end: the gzip CRC and length are checked
            pass
        _record_archive(url, dest, record, stream.sha256.hexdigest())
    absent = sorted(file.removesuffix(".hdf5") for file in todo)
    named = ", ".join(f"{s} ({record['wanted'][s]})" for s in absent[:5])
    more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
    raise DownloadError(
        f"{url}: the archive holds no session {named}{more}; the {len(seen)} wanted "
        f"member(s) it holds are published and verified"
    )


def _session_file(member_name: str) -> str | None:
    """``<session>.hdf5`` for a member in the release's layout (``TOP/<session>.hdf5``,
    or flat), else None."""
    parts = posixpath.normpath(member_name).strip("/").split("/")
    return parts[-1] if len(parts) <= 2 and parts[-1].endswith(".hdf5") else None


def _publish(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, file: str, record: dict):
    """Write one member into the staging folder, check it, record it, rename it into place."""
    staged, final = dest / STAGING / file, dest / file
    check_free_space(dest, member.size, f"{ARCHIVE_NAME}: member {member.name}")
    digest, written = hashlib.sha256(), 0
    source = tar.extractfile(member)
    with open(staged, "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    if written != member.size:
        raise MalformedArchiveError(f"{ARCHIVE_NAME}: member {member.name!r} is truncated")
    try:
        read_session_attrs(staged)
    except (OSError, ValueError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MalformedArchiveError(
            f"{ARCHIVE_NAME}: member {member.name!r} is not a readable emg2qwerty session ({why})"
        ) from None
    entry = {"size": written, "sha256": digest.hexdigest(), "mtime_ns": None}
    record["members"][file] = entry
    update_manifest(dest, SUBSET_RECORD, record)  # recorded first: a kill leaves no stranger
    os.replace(staged, final)
    entry["mtime_ns"] = final.stat().st_mtime_ns
    update_manifest(dest, SUBSET_RECORD, record)


def _record_archive(url: str, dest: Path, record: dict, sha256: str) -> None:
    """The whole archive streamed past: its sha256 must match any recorded before."""
    known = (load_manifest(dest).get(ARCHIVE_NAME) or {}).get("sha256") or record.get(
        "archive_sha256"
    )
    if known and known != sha256:
        raise DownloadError(
            f"{url}: the archive's sha256 {sha256} differs from the one recorded in "
            f"{dest / '.manifest.json'} ({known})"
        )
    record["archive_sha256"] = sha256
    update_manifest(dest, SUBSET_RECORD, record)
