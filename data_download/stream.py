"""An HTTP body read as a stream, never stored: the archive of a subset download.

The same checks as a file download (:mod:`data_download.fetch`, :mod:`.responses`) hold
for every byte: http(s) only, redirects included; a whole-file request must get HTTP 200
with the file's size announced, and that size must match the one recorded or pinned and
stay under ``max_bytes``; never a byte past the announced length; no slower than the
rate floor. A connection that drops is resumed *within the run* with ``Range`` +
``If-Range`` at the exact byte reached (the gzip decoder reading this stream keeps its
state in memory), up to ``retries`` times, if the server identifies the version
(strong ETag or Last-Modified) and answers ``206`` at that byte with the same size and
validators. Across runs a stream cannot be resumed mid-way: inflating from a byte
offset needs the decoder's 32 KiB window and bit position, which Python's ``zlib``
can neither save nor restore (no ``inflatePrime``), so a rerun reads from byte 0.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import time
import urllib.error

from .errors import DownloadError
from .fetch import (
    USER_AGENT,
    FetchOptions,
    _bar,
    changed_since,
    check_announced,
    if_range,
    response_validators,
)
from .responses import ChangedRange, expected_body, open_url

RERUN = "published members are kept; rerun to go on (the stream restarts from byte 0)"


class ArchiveStream(io.RawIOBase):
    """A readable over ``url``'s body: checked, rate-floored, resumed within the run.

    ``size``: the archive's recorded or pinned byte count (None: not known yet).
    ``position`` and ``sha256`` cover the bytes read so far, from byte 0."""

    def __init__(self, url: str, options: FetchOptions, size: int | None = None):
        super().__init__()
        self.url, self.opts = url, options
        self.position, self.sha256 = 0, hashlib.sha256()
        self.resumes = 0
        self.response = self._open({})
        body = expected_body(url, self.response, 0)
        if body.total is None:
            raise DownloadError(f"{url}: server did not announce the file size")
        check_announced(url, body.total, size, options.max_bytes)
        self.total = body.total
        self.validators = response_validators(self.response.headers)
        self.bar = _bar(self.total, f"stream {url.rsplit('/', 1)[-1]}", options.progress)
        self._window_start, self._window_bytes = time.monotonic(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        wanted = min(len(buffer), self.total - self.position)
        if wanted <= 0:
            self._refuse_overrun()
            return 0
        while True:
            try:
                data = self.response.read1(wanted)
            except (OSError, http.client.HTTPException) as e:
                data, reason = b"", str(e) or type(e).__name__
            else:
                reason = "server closed the connection early"
            if data:
                break
            self._resume(reason)
        n = len(data)
        buffer[:n] = data
        self.position += n
        self.sha256.update(data)
        self.bar.update(n)
        self._pace(n)
        return n

    def close(self) -> None:
        if not self.closed:
            self.response.close()
            self.bar.close()
        super().close()

    # ------------------------------------------------------------ internals

    def _open(self, headers: dict[str, str]):
        try:
            return open_url(
                self.url, {"User-Agent": USER_AGENT, **headers}, self.opts.timeout, self.opts.pace
            )
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{self.url}: HTTP {e.code} {e.reason}") from None

    def _pace(self, n: int) -> None:
        """Refuse a drip: fewer than ``min_rate`` bytes/s over one ``rate_window``."""
        self._window_bytes += n
        elapsed = time.monotonic() - self._window_start
        if elapsed >= self.opts.rate_window and self.position < self.total:
            if self._window_bytes < self.opts.min_rate * elapsed:
                raise DownloadError(
                    f"{self.url}: slower than --min-rate {self.opts.min_rate:g} B/s "
                    f"({self._window_bytes} bytes in the last {elapsed:.0f} s); {RERUN}"
                )
            self._window_start, self._window_bytes = time.monotonic(), 0

    def _refuse_overrun(self) -> None:
        try:
            extra = self.response.read1(1)
        except (OSError, http.client.HTTPException):
            extra = b""
        if extra:
            raise DownloadError(
                f"{self.url}: the server sent more than the {self.total} bytes it announced"
            )

    def _resume(self, reason: str) -> None:
        """Reopen at ``position`` with Range + If-Range, or end with one line saying why not."""
        lost = f"{self.url}: connection lost after {self.position} bytes ({reason})"
        condition = if_range(self.validators)
        if self.resumes >= self.opts.retries or condition is None:
            why = "" if condition else "; the server names no version to resume it safely"
            raise DownloadError(f"{lost}{why}; {RERUN}")
        self.resumes += 1
        time.sleep(min(2.0 ** (self.resumes - 1), 10.0))
        self.response.close()
        self.response = self._open({"Range": f"bytes={self.position}-", "If-Range": condition})
        try:
            body = expected_body(self.url, self.response, self.position)
        except ChangedRange as e:
            raise DownloadError(f"{lost}; cannot resume: {e}; {RERUN}") from None
        current = response_validators(self.response.headers)
        if body.start != self.position or body.total != self.total:
            raise DownloadError(f"{lost}; the server sent the whole file again; {RERUN}")
        if changed_since(self.validators, current):
            raise DownloadError(f"{lost}; the archive changed on the server; {RERUN}")
