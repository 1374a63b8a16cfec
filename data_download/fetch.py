"""Resumable, verified HTTP download of one file.

A download streams into ``<name>.part`` and is renamed to ``<name>`` only after its size
and sha256 check out, so nothing at the final path ever looks complete when it is not.
A rerun resumes the ``.part`` file with an HTTP Range request guarded by ``If-Range``:
the server's validators (ETag, Last-Modified) are kept in ``<name>.part.json``, and when
the file on the server changed (or its validators are unknown) the download restarts from
zero instead of splicing two versions. ``DEST/.manifest.json``
records the size, sha256 and mtime of every published file: a rerun skips a file whose
size and mtime still match (``verify=True`` re-hashes it), and a file downloaded again
later must match the size and sha256 recorded the first time. What a server answers is
checked before its bytes are kept (:mod:`data_download.responses`): the status and range
asked for, the announced length (never written past), a minimum rate, http(s) only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import DownloadError
from .responses import (
    SCHEMES,
    ChangedRange,
    Interrupted,
    Overrun,
    Pace,
    Stalled,
    content_range_of,
    expected_body,
    open_url,
    read_body,
)

MANIFEST = ".manifest.json"
PART_SUFFIXES = (".part", ".part.json", ".part.json.tmp")  # a download's working files
USER_AGENT = "semgkit-data-download/0.1"
GIB = 1024**3


@dataclass
class FetchOptions:
    timeout: float = 15.0  # seconds, for connecting and for each read from the socket
    retries: int = 2  # automatic resumes after a connection that dropped mid-transfer
    chunk_size: int = 1 << 20
    verify: bool = False  # re-hash files the manifest already lists instead of trusting size+mtime
    extra_space_ratio: float = 0.0  # free disk needed beyond the file, as a multiple of its size
    progress: bool = True
    # a drip ends: fewer than min_rate bytes/s over rate_window seconds (0: no minimum)
    min_rate: float = 10 * 1024
    rate_window: float = 60.0
    max_bytes: int | None = None  # refuse a file announced larger than this

    def __post_init__(self) -> None:
        for what, ok in (
            ("timeout (--timeout) must be finite and > 0", 0 < self.timeout < math.inf),
            ("retries (--retries) must be >= 0", self.retries >= 0),
            ("min_rate (--min-rate) must be finite and >= 0", 0 <= self.min_rate < math.inf),
            ("rate_window (--rate-window) must be finite and > 0", 0 < self.rate_window < math.inf),
            ("max_bytes must be None or >= 0", self.max_bytes is None or self.max_bytes >= 0),
            ("chunk_size must be > 0", self.chunk_size > 0),
            ("extra_space_ratio must be >= 0", self.extra_space_ratio >= 0),
        ):
            if not ok:
                field = what.split()[0]
                raise DownloadError(f"{what}, got {getattr(self, field)}")

    @property
    def pace(self) -> Pace:
        return Pace(self.min_rate, self.rate_window)


# ---------------------------------------------------------------- manifest


def load_manifest(dest: Path) -> dict:
    path = dest / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DownloadError(f"{path}: unreadable manifest ({e}); delete it to start over") from e
    if not isinstance(data, dict):
        raise DownloadError(f"{path}: manifest is not a JSON object; delete it to start over")
    return data


def update_manifest(dest: Path, key: str, entry: dict | None) -> None:
    """Set (or with ``entry=None`` drop) one manifest entry; written via a temp file + rename."""
    data = load_manifest(dest)
    if entry is None:
        data.pop(key, None)
    else:
        data[key] = entry
    tmp = dest / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, dest / MANIFEST)


# ---------------------------------------------------------------- helpers


def sha256_file(path: Path, progress: bool = False) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f, _bar(size, f"sha256 {path.name}", progress) as bar:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def check_free_space(directory: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise DownloadError(
            f"not enough free disk in {directory}: {what} needs {needed / GIB:.2f} GiB, "
            f"{free / GIB:.2f} GiB free"
        )


def _bar(total: int | None, desc: str, progress: bool) -> tqdm:
    # disable=None lets tqdm switch itself off when stderr is not a terminal
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None if progress else True,
        leave=False,
    )


def _name_from_url(url: str) -> str:
    name = Path(urllib.parse.urlparse(url).path).name
    if not name:
        raise DownloadError(f"cannot derive a file name from URL {url}; pass --name")
    return name


def check_url(url: str) -> str:
    """Refuse anything but http(s): ``file://`` would silently copy a possibly huge local
    file, and other schemes (ftp, data) cannot be resumed or validated."""
    parts = urllib.parse.urlparse(url)
    if parts.scheme.lower() not in SCHEMES:
        raise DownloadError(
            f"{url}: only http:// and https:// URLs can be fetched; to use a local copy, "
            f"place it at DEST/NAME and adopt it with: fetch URL --dest DEST --name NAME "
            f"--sha256 HEX"
        )
    if not parts.netloc:
        raise DownloadError(f"{url}: the URL names no host")
    return url


def _check_name(name: str, dest: Path) -> str:
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name.endswith("/"):
        raise DownloadError(f"file name {name!r} must be a relative file path inside {dest}")
    if path.parts[0] in (MANIFEST, MANIFEST + ".tmp") or path.name.endswith(PART_SUFFIXES):
        raise DownloadError(f"file name {name!r} is reserved for data_download's own files")
    return name


def _check_sha256(hex_digest: str | None) -> str | None:
    if hex_digest is None:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", hex_digest):
        raise DownloadError(f"--sha256 must be 64 hex digits, got {hex_digest!r}")
    return hex_digest.lower()


def _recorded(dest: Path, name: str) -> dict | None:
    entry = load_manifest(dest).get(name)
    if entry is None:
        return None
    ok = (
        isinstance(entry, dict)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
    )
    if not ok:
        raise DownloadError(
            f"{dest / MANIFEST}: entry {name!r} is malformed (needs size and sha256); "
            f"delete the entry to start over"
        )
    return entry


def _stat_entry(path: Path, digest: str, url: str) -> dict:
    st = path.stat()
    return {"url": url, "size": st.st_size, "sha256": digest, "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------- fetch


def fetch(
    url: str,
    dest: Path | str,
    *,
    name: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    options: FetchOptions | None = None,
) -> Path:
    """Download ``url`` to ``dest/name`` (name defaults to the URL's last path component;
    it may contain sub-folders), verified, resumable; returns the final path.

    ``sha256`` and ``size`` pin the file: a server announcing another size is refused
    before a byte is written, and other bytes are never published."""
    opts = options or FetchOptions()
    dest = Path(dest)
    check_url(url)
    name = _check_name(name or _name_from_url(url), dest)
    expected = _check_sha256(sha256)
    if size is not None and not (isinstance(size, int) and size >= 0):
        raise DownloadError(f"size must be a byte count >= 0, got {size!r}")
    try:
        return _fetch(url, dest, name, expected, size, opts)
    except OSError as e:  # local file system: not a directory, read-only, disk full...
        raise DownloadError(f"{e.filename or dest}: {e.strerror or e}") from None


def _fetch(
    url: str, dest: Path, name: str, expected: str | None, size: int | None, opts: FetchOptions
) -> Path:
    if dest.exists() and not dest.is_dir():
        raise DownloadError(f"--dest {dest} exists and is not a directory")
    final = dest / name
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)

    recorded = _recorded(dest, name)
    if recorded is not None and expected is not None and recorded["sha256"] != expected:
        raise DownloadError(
            f"{final}: --sha256 {expected} differs from the sha256 recorded in "
            f"{dest / MANIFEST} ({recorded['sha256']}); delete the entry to accept a new file"
        )
    expected = expected or (recorded or {}).get("sha256")
    size = size if size is not None else (recorded or {}).get("size")

    if final.exists():
        return _reuse_existing(dest, name, url, recorded, expected, opts)

    partial = _PartFile(part, url, opts.progress)
    for attempt in range(opts.retries + 1):
        before = partial.size
        try:
            total = _transfer(url, partial, final.name, opts, size)
            break
        except Interrupted as e:
            if attempt == opts.retries or partial.size <= before:
                raise DownloadError(
                    f"{url}: connection lost after {partial.size} bytes ({e.reason}); "
                    f"partial data kept in {part}, rerun to resume"
                ) from None
            time.sleep(min(2.0**attempt, 10.0))
        except Stalled as e:
            raise DownloadError(
                f"{url}: slower than --min-rate {opts.min_rate:g} B/s ({e.got} bytes in the "
                f"last {e.seconds:.0f} s); partial data kept in {part}, rerun to resume"
            ) from None

    if partial.size != total:  # (a .part changed behind our back)
        partial.discard()
        raise DownloadError(
            f"{url}: {part} holds {partial.size} bytes, the server announced {total}; "
            f"deleted it, rerun to start over"
        )
    digest = partial.digest.hexdigest()
    if expected is not None and digest != expected:
        partial.discard()
        raise DownloadError(
            f"{url}: sha256 mismatch (expected {expected}, got {digest}); "
            f"the bad download was deleted, nothing was written to {final}"
        )
    os.replace(part, final)
    partial.validators_path.unlink(missing_ok=True)
    update_manifest(dest, name, _stat_entry(final, digest, url))
    return final


def _reuse_existing(
    dest: Path,
    name: str,
    url: str,
    recorded: dict | None,
    expected: str | None,
    opts: FetchOptions,
) -> Path:
    """Accept a file already at the final path only if it matches what the manifest says."""
    final = dest / name
    if recorded is None and expected is None:
        raise DownloadError(
            f"{final} exists but is not recorded in {dest / MANIFEST} and no --sha256 "
            f"was given to check it; delete it (or pass --sha256) and rerun"
        )
    st = final.stat()
    unchanged = (
        recorded is not None
        and st.st_size == recorded["size"]
        and st.st_mtime_ns == recorded.get("mtime_ns")
    )
    if unchanged and not opts.verify:
        return final
    digest = sha256_file(final, opts.progress)
    if digest != expected:
        raise DownloadError(
            f"{final}: sha256 {digest} does not match the expected {expected}; "
            f"the file is corrupt or was replaced, delete it and rerun"
        )
    update_manifest(dest, name, _stat_entry(final, digest, url))
    return final


class _PartFile:
    """The ``.part`` file, the sha256 of the bytes it holds (kept in step while appending)
    and, in ``.part.json``, the URL and server validators those bytes came from."""

    def __init__(self, path: Path, url: str, progress: bool):
        self.path = path
        self.url = url
        self.validators_path = path.with_name(path.name + ".json")
        self.digest = hashlib.sha256()
        self.forget_unverifiable()
        if path.exists():  # resuming: hash what an earlier run already wrote
            with open(path, "rb") as f, _bar(self.size, f"resume {path.name}", progress) as bar:
                while chunk := f.read(1 << 20):
                    self.digest.update(chunk)
                    bar.update(len(chunk))

    @property
    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    @property
    def validators(self) -> dict:
        """What the server said about the file the ``.part`` bytes belong to ({} if unknown)."""
        try:
            saved = json.loads(self.validators_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return saved if isinstance(saved, dict) and saved.get("url") == self.url else {}

    def forget_unverifiable(self) -> None:
        """Drop bytes whose version on the server cannot be checked before resuming."""
        if self.path.exists() and if_range(self.validators) is None:
            _note(f"{self.path}: no ETag/Last-Modified recorded to show the file is unchanged")
            self.discard()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.validators_path.unlink(missing_ok=True)
        self.digest = hashlib.sha256()

    def start(self, validators: dict) -> None:
        """Begin an empty ``.part``; its validators are written first, so that bytes on
        disk are never without a record of the version they belong to."""
        self.discard()
        tmp = self.validators_path.with_name(self.validators_path.name + ".tmp")
        tmp.write_text(json.dumps({"url": self.url, **validators}, sort_keys=True) + "\n")
        os.replace(tmp, self.validators_path)

    def write(self, f, chunk: bytes) -> None:
        try:
            f.write(chunk)
        except OSError as e:
            raise DownloadError(
                f"{self.path}: cannot write ({e.strerror or e}); the bytes so far are kept, "
                f"free some space and rerun to resume"
            ) from None
        self.digest.update(chunk)


def _transfer(url: str, part: _PartFile, label: str, opts: FetchOptions, size: int | None) -> int:
    """Append the rest of ``url`` to ``part``; returns the file's total size in bytes.

    A resume asks for the missing bytes only if the server's file still has the validators
    recorded when ``part`` was started (``If-Range``); otherwise it starts over from zero.
    The answer is checked against the request (responses.expected_body) and the announced
    size against ``size`` and ``opts.max_bytes`` before a byte is written. Errors that a
    resume can fix raise ``Interrupted``; a drip ``Stalled``; the others ``DownloadError``.
    """
    part.forget_unverifiable()  # (a server without validators: every retry starts over)
    offset, saved = part.size, part.validators
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers.update({"Range": f"bytes={offset}-", "If-Range": if_range(saved)})
    try:
        response = open_url(url, headers, opts.timeout, opts.pace)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            _, _, total = content_range_of(e.headers.get("Content-Range"))
            if total == offset == saved.get("total"):  # the .part already holds everything
                return total
            part.discard()
            raise DownloadError(
                f"{url}: server refused to resume at byte {offset} (HTTP 416); "
                f"deleted {part.path}, rerun to start over"
            ) from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None

    with response:
        current = response_validators(response.headers)
        try:
            body = expected_body(url, response, offset)
        except ChangedRange as e:
            _note(f"{url}: {e}")
            part.discard()
            response.close()
            return _transfer(url, part, label, opts, size)
        if body.start:
            if body.total != saved.get("total") or changed_since(saved, current):
                _note(f"{url}: the file on the server changed since {part.path} was started")
                part.discard()
                response.close()
                return _transfer(url, part, label, opts, size)
        elif offset:  # a server that sent the whole (possibly new) file
            _note(f"{url}: the server sent the whole file, not the rest (it changed)")
        total, offset = body.total, body.start
        if total is None:
            raise DownloadError(f"{url}: server did not announce the file size")
        check_announced(url, total, size, opts.max_bytes)
        needed = (total - offset) + int(total * opts.extra_space_ratio)
        check_free_space(part.path.parent, needed, f"{label} ({total / GIB:.2f} GiB)")
        if not offset:
            part.start({**current, "total": total})
        try:
            with open(part.path, "ab") as f, _bar(total, label, opts.progress) as bar:
                bar.update(offset)

                def write(chunk: bytes) -> None:
                    part.write(f, chunk)
                    bar.update(len(chunk))

                read_body(url, response, body.length, write, opts.chunk_size, opts.pace)
        except Overrun:  # headers and body disagree: none of it can be trusted
            part.discard()
            raise
    if part.size < total:  # a shorter range than asked for: resume the rest
        raise Interrupted(f"the server sent only up to byte {offset + body.length} of {total}")
    return total


def check_announced(url: str, total: int, size: int | None, cap: int | None) -> None:
    if size is not None and total != size:
        raise DownloadError(
            f"{url}: the server announces {total} bytes, the file is pinned at {size}; "
            f"nothing was written"
        )
    if cap is not None and total > cap:
        raise DownloadError(
            f"{url}: the server announces {total} bytes, over the cap of {cap} (max_bytes); "
            f"nothing was written"
        )


def _note(why: str) -> None:
    """One line on stderr when a resume is given up: the user sees why bytes are re-fetched."""
    print(f"note: {why}; restarting the download from zero", file=sys.stderr)


def response_validators(headers) -> dict:
    """The response's ETag and Last-Modified, the headers that identify one version."""
    found = {"etag": headers.get("ETag"), "last_modified": headers.get("Last-Modified")}
    return {key: value for key, value in found.items() if value}


def if_range(saved: dict) -> str | None:
    """The ``If-Range`` value for a resume: a strong ETag, else the Last-Modified date
    (a weak ETag is not allowed there); ``None`` when the version cannot be identified."""
    etag = saved.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return saved.get("last_modified")


def changed_since(saved: dict, current: dict) -> bool:
    """True unless the response repeats a recorded validator and contradicts none."""
    shared = [key for key in ("etag", "last_modified") if key in saved and key in current]
    return not shared or any(saved[key] != current[key] for key in shared)
