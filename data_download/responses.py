"""What a server's answer must be before its bytes are kept.

A download asks either for the whole file, and then only ``200`` is accepted, or for the
rest of it from a byte offset, and then ``206`` whose ``Content-Range`` starts at that
offset (or ``200``, the whole file). Any other answer is refused before a byte is written:
a ``206`` to a whole-file request once published 100 bytes of a 1,000-byte file. The body
is read up to the length the headers announce and no further (a server that keeps sending
is refused rather than filling the disk), at no less than a minimum rate over a window
(a drip ends instead of holding the download for ever; the headers too must arrive within
the window), and only http(s) URLs are followed, redirects included (``urllib`` would
follow one to ``ftp://``).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from .errors import DownloadError

SCHEMES = ("http", "https")


class Interrupted(Exception):
    """The transfer broke off in a way a resume (Range request) can repair."""

    def __init__(self, reason: object):
        self.reason = reason


class Stalled(Exception):
    """Fewer bytes than the minimum rate allows arrived over one window."""

    def __init__(self, got: int, seconds: float):
        self.got, self.seconds = got, seconds


class Overrun(DownloadError):
    """The body runs past the length its headers announced."""


class ChangedRange(Exception):
    """A ranged request was answered with another range: the ``.part`` cannot be resumed."""


@dataclass(frozen=True)
class Pace:
    """The slowest transfer accepted: ``min_rate`` bytes/s averaged over ``window`` s."""

    min_rate: float
    window: float


@dataclass(frozen=True)
class Body:
    start: int  # the file offset of the response's first byte
    total: int | None  # the file's size, None when the server does not say
    length: int | None  # bytes in this response


# ---------------------------------------------------------------- opening


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlparse(newurl).scheme.lower() not in SCHEMES:
            fp.close()
            raise DownloadError(
                f"{req.full_url}: HTTP {code} redirects to {newurl}; only http:// and "
                f"https:// URLs are followed"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Deadlines:
    """Connections whose response headers must arrive within ``seconds``: a timer shuts
    the socket down if they do not (the socket timeout alone only bounds each read)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False

    def guard(self, connection_class: type) -> Callable[..., http.client.HTTPConnection]:
        def make(*args, **kwargs) -> http.client.HTTPConnection:
            conn = connection_class(*args, **kwargs)
            connect, getresponse = conn.connect, conn.getresponse
            timer: list[threading.Timer] = []

            def expire() -> None:
                self.expired = True
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)

            def timed_connect() -> None:
                connect()
                timer.append(threading.Timer(self.seconds, expire))
                timer[-1].daemon = True
                timer[-1].start()

            def timed_getresponse():
                try:
                    return getresponse()
                finally:
                    for t in timer:
                        t.cancel()

            conn.connect, conn.getresponse = timed_connect, timed_getresponse
            return conn

        return make


def open_url(url: str, headers: dict[str, str], timeout: float, pace: Pace):
    """``urlopen`` that follows only http(s) redirects and bounds the wait for headers
    by the pace's window. Raises ``urllib.error.HTTPError`` for HTTP errors, and
    ``DownloadError`` for everything else that goes wrong before the body."""
    deadlines = _Deadlines(max(pace.window, timeout))

    class Plain(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(deadlines.guard(http.client.HTTPConnection), req)

    class Secure(urllib.request.HTTPSHandler):
        def https_open(self, req):
            guarded = deadlines.guard(http.client.HTTPSConnection)
            return self.do_open(guarded, req, context=self._context)

    opener = urllib.request.build_opener(_HttpOnlyRedirects, Plain, Secure)
    late = DownloadError(f"{url}: no complete response headers within {deadlines.seconds:g} s")
    try:
        response = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError:
        if deadlines.expired:
            raise late from None
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        if deadlines.expired:
            raise late from None
        raise DownloadError(f"{url}: cannot connect ({getattr(e, 'reason', e)})") from None
    if deadlines.expired:  # headers cut short by the shutdown can still parse
        response.close()
        raise late
    final = response.geturl()
    if urllib.parse.urlparse(final).scheme.lower() not in SCHEMES:  # a second line of defence
        response.close()
        raise DownloadError(f"{url}: redirected to {final}; only http(s) is followed")
    return response


# ---------------------------------------------------------------- checking


def expected_body(url: str, response, offset: int) -> Body:
    """What the response carries, checked against the request: ``offset == 0`` asked for
    the whole file, otherwise for ``bytes=offset-``. Raises ``ChangedRange`` when a ranged
    request got another range (restart), ``DownloadError`` for an answer never valid."""
    status = response.status
    length = _digits(response.headers.get("Content-Length"))
    content_range = response.headers.get("Content-Range")
    if status == 200:
        return Body(0, length, length)
    if status != 206:
        raise DownloadError(f"{url}: unexpected answer HTTP {status} {response.reason}")
    if not offset:
        raise DownloadError(
            f"{url}: the server answered a request for the whole file with HTTP 206 "
            f"(part of it: Content-Range {content_range!r}); nothing was kept"
        )
    first, last, total = content_range_of(content_range)
    if first != offset or last is None or total is None or not first <= last < total:
        raise ChangedRange(f"asked for bytes {offset}-, got Content-Range {content_range!r}")
    if length is not None and length != last - first + 1:
        raise DownloadError(
            f"{url}: Content-Length {length} contradicts Content-Range {content_range!r}"
        )
    return Body(first, total, last - first + 1)


def content_range_of(value: str | None) -> tuple[int | None, int | None, int | None]:
    """(first byte, last byte, total size) from ``bytes 100-199/300``; ``bytes */300``
    gives (None, None, 300); unreadable values give Nones."""
    match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+)", (value or "").strip())
    if not match:
        return None, None, None
    first, last, total = match.groups()
    return (int(first) if first else None), (int(last) if last else None), int(total)


def _digits(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


# ---------------------------------------------------------------- reading


def read_body(
    url: str, response, length: int, write: Callable[[bytes], None], chunk: int, pace: Pace
) -> None:
    """Pass exactly ``length`` bytes of the body to ``write``, at no less than ``pace``.

    Raises ``Interrupted`` if the connection drops or ends early, ``Stalled`` for a drip,
    and ``Overrun`` if the server sends more than it announced."""
    left = length
    since, got = time.monotonic(), 0
    while left:
        try:
            data = response.read1(min(chunk, left))  # returns what has arrived, not all
        except (OSError, http.client.HTTPException) as e:
            raise Interrupted(str(e) or type(e).__name__) from None
        if not data:
            raise Interrupted("server closed the connection early")
        write(data)
        left -= len(data)
        got += len(data)
        elapsed = time.monotonic() - since
        if left and elapsed >= pace.window:
            if got < pace.min_rate * elapsed:
                raise Stalled(got, elapsed)
            since, got = time.monotonic(), 0
    try:
        extra = response.read1(1)
    except (OSError, http.client.HTTPException):
        extra = b""
    if extra:
        raise Overrun(
            f"{url}: the server sent more than the {length} bytes it announced; "
            f"the download was deleted"
        )
