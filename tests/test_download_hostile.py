"""data_download.fetch against loopback servers that misbehave: each answer is a script
writing raw bytes, so a server can lie about a status, a length or a range, drip, run on
past its length or redirect to another scheme. Every loop in a script is bounded."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from data_download import DownloadError, FetchOptions, fetch
from data_download.fetch import MANIFEST

ROOT = Path(__file__).resolve().parent.parent
fetch_module = importlib.import_module("data_download.fetch")
DATA = bytes(range(256)) * 4  # 1,024 bytes
SHA = hashlib.sha256(DATA).hexdigest()
ETAG = '"v1"'
OPTS = FetchOptions(timeout=5.0, retries=0, progress=False)


class Scripted:
    """A loopback server whose answer to every GET is ``script(handler)``."""

    def __init__(self):
        self.script: Callable[[BaseHTTPRequestHandler], None] = serve(DATA)
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append({"path": self.path, **dict(self.headers)})
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server.script(self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Scripted()
    yield srv
    srv.close()


def head(h, status: str, **headers: object) -> None:
    """A raw status line and headers (``Content_Length`` -> ``Content-Length``)."""
    lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    h.wfile.flush()


def serve(data: bytes, cut_after: int | None = None) -> Callable:
    """A well-behaved server (Range and If-Range honoured), optionally cutting the body."""

    def script(h):
        rng, condition = h.headers.get("Range"), h.headers.get("If-Range")
        start = int(rng[6:].split("-")[0]) if rng and condition == ETAG else 0
        if start:
            head(
                h,
                "206 Partial Content",
                ETag=ETAG,
                Content_Length=len(data) - start,
                Content_Range=f"bytes {start}-{len(data) - 1}/{len(data)}",
            )
        else:
            head(h, "200 OK", ETag=ETAG, Content_Length=len(data))
        h.wfile.write(data[start:][:cut_after])

    return script


def endless(h, max_bytes: int = 8 << 20) -> None:
    """Keep sending (up to a bound) until the client hangs up."""
    for _ in range(max_bytes // 4096):
        h.wfile.write(b"x" * 4096)


def part_files(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.glob("*.part*"))


def track_writes(monkeypatch) -> list[int]:
    """The .part file's size after every write, to show nothing runs past the length."""
    sizes: list[int] = []
    real = fetch_module._PartFile.write

    def write(self, f, chunk):
        real(self, f, chunk)
        f.flush()
        sizes.append(self.path.stat().st_size)

    monkeypatch.setattr(fetch_module._PartFile, "write", write)
    return sizes


# ---------------------------------------------------------------- statuses and ranges


def test_a_206_to_a_whole_file_request_is_never_published(server, tmp_path):
    def partial(h):
        head(
            h,
            "206 Partial Content",
            ETag=ETAG,
            Content_Length=100,
            Content_Range=f"bytes 0-99/{len(DATA)}",
        )
        h.wfile.write(DATA[:100])

    server.script = partial
    with pytest.raises(DownloadError, match="request for the whole file with HTTP 206"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file, no .part, no manifest
    # the genuine file is then accepted (it used to be refused as a sha256 mismatch)
    server.script = serve(DATA)
    path = fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert path.read_bytes() == DATA
    assert json.loads((tmp_path / MANIFEST).read_text())["f.bin"]["sha256"] == SHA


@pytest.mark.parametrize("status", ["203 Non-Authoritative Information", "204 No Content"])
def test_an_unexpected_success_status_is_refused(server, tmp_path, status):
    server.script = lambda h: head(h, status, Content_Length=0)
    with pytest.raises(DownloadError, match=f"unexpected answer HTTP {status[:3]}"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert list(tmp_path.iterdir()) == []


def test_a_resume_answered_with_another_range_restarts(server, tmp_path, capsys):
    server.script = serve(DATA, cut_after=500)
    with pytest.raises(DownloadError, match="connection lost after 500 bytes"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)

    def wrong_range(h):
        if h.headers.get("Range"):
            head(
                h,
                "206 Partial Content",
                ETag=ETAG,
                Content_Length=len(DATA) - 100,
                Content_Range=f"bytes 100-{len(DATA) - 1}/{len(DATA)}",
            )
            h.wfile.write(DATA[100:])
        else:
            serve(DATA)(h)

    server.script = wrong_range
    path = fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert path.read_bytes() == DATA  # restarted from zero, never spliced at the wrong byte
    assert [r.get("Range") for r in server.requests[1:]] == ["bytes=500-", None]
    assert (
        "asked for bytes 500-, got Content-Range 'bytes 100-1023/1024'" in capsys.readouterr().err
    )


def test_a_content_length_contradicting_the_range_keeps_the_part(server, tmp_path):
    server.script = serve(DATA, cut_after=500)
    with pytest.raises(DownloadError, match="connection lost"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)

    def contradicting(h):
        head(
            h,
            "206 Partial Content",
            ETag=ETAG,
            Content_Length=10,
            Content_Range=f"bytes 500-{len(DATA) - 1}/{len(DATA)}",
        )
        h.wfile.write(DATA[500:510])

    server.script = contradicting
    with pytest.raises(DownloadError, match="Content-Length 10 contradicts Content-Range"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert (tmp_path / "f.bin.part").read_bytes() == DATA[:500]
    server.script = serve(DATA)
    assert fetch(f"{server.url}/f.bin", tmp_path, options=OPTS).read_bytes() == DATA


def test_a_shorter_range_than_asked_is_resumed_for_the_rest(server, tmp_path):
    def in_pieces(h):  # a server that never sends more than 300 bytes per answer
        rng = h.headers.get("Range")
        start = int(rng[6:].split("-")[0]) if rng else 0
        end = min(start + 300, len(DATA)) - 1
        head(
            h,
            "206 Partial Content" if rng else "200 OK",
            ETag=ETAG,
            Content_Length=len(DATA) if not rng else end - start + 1,
            **({"Content_Range": f"bytes {start}-{end}/{len(DATA)}"} if rng else {}),
        )
        h.wfile.write(DATA[start : end + 1] if rng else DATA[:300])

    server.script = in_pieces
    opts = FetchOptions(timeout=5.0, retries=5, progress=False)
    assert fetch(f"{server.url}/f.bin", tmp_path, options=opts).read_bytes() == DATA
    assert [r.get("Range") for r in server.requests] == [
        None,
        "bytes=300-",
        "bytes=600-",
        "bytes=900-",
    ]


# ---------------------------------------------------------------- lengths


def test_a_chunked_body_past_its_content_length_is_cut_at_the_length(server, tmp_path, monkeypatch):
    def chunked(h):
        head(h, "200 OK", ETag=ETAG, Content_Length=len(DATA), Transfer_Encoding="chunked")
        for _ in range(2000):  # ~8 MiB offered for a 1,024-byte file
            h.wfile.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")

    server.script = chunked
    sizes = track_writes(monkeypatch)
    with pytest.raises(DownloadError, match="sent more than the 1024 bytes it announced"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert max(sizes) == len(DATA)  # never a byte past the announced length
    assert part_files(tmp_path) == [] and not (tmp_path / "f.bin").exists()


def test_a_206_that_never_ends_is_cut_at_its_range(server, tmp_path, monkeypatch):
    server.script = serve(DATA, cut_after=500)
    with pytest.raises(DownloadError, match="connection lost after 500 bytes"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)

    def never_ends(h):  # no Content-Length: the body would end only when the socket closes
        head(
            h,
            "206 Partial Content",
            ETag=ETAG,
            Content_Range=f"bytes 500-{len(DATA) - 1}/{len(DATA)}",
        )
        h.wfile.write(DATA[500:])
        endless(h)

    server.script = never_ends
    sizes = track_writes(monkeypatch)
    with pytest.raises(DownloadError, match="sent more than the 524 bytes it announced"):
        fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
    assert max(sizes) == len(DATA)
    assert part_files(tmp_path) == []


def test_a_pinned_size_or_the_cap_refuses_before_writing(server, tmp_path):
    url = f"{server.url}/f.bin"
    with pytest.raises(DownloadError, match="announces 1024 bytes, the file is pinned at 1000"):
        fetch(url, tmp_path, size=1000, options=OPTS)
    capped = FetchOptions(timeout=5.0, retries=0, progress=False, max_bytes=1000)
    with pytest.raises(DownloadError, match="over the cap of 1000 .max_bytes."):
        fetch(url, tmp_path, options=capped)
    assert list(tmp_path.iterdir()) == []
    assert fetch(url, tmp_path, size=len(DATA), sha256=SHA, options=OPTS).read_bytes() == DATA


def test_a_redownload_must_announce_the_recorded_size(server, tmp_path):
    url = f"{server.url}/f.bin"
    fetch(url, tmp_path, options=OPTS).unlink()
    server.script = serve(DATA + b"more")
    with pytest.raises(DownloadError, match="announces 1028 bytes, the file is pinned at 1024"):
        fetch(url, tmp_path, options=OPTS)
    assert part_files(tmp_path) == []


# ---------------------------------------------------------------- drips


def drip(h, every_s: float = 0.05, body: bytes = DATA) -> None:
    head(h, "200 OK", ETag=ETAG, Content_Length=len(body))
    for i in range(min(len(body), 200)):  # at most 10 s
        h.wfile.write(body[i : i + 1])
        h.wfile.flush()
        time.sleep(every_s)


def test_a_drip_ends_with_one_line_and_a_resumable_part(server, tmp_path):
    server.script = drip
    url = f"{server.url}/f.bin"
    proc = subprocess.run(
        [sys.executable, "-m", "data_download", "fetch", url, "--dest", str(tmp_path)]
        + ["--min-rate", "100", "--rate-window", "0.5", "--retries", "0", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "slower than --min-rate 100 B/s" in proc.stderr and "rerun to resume" in proc.stderr
    kept = (tmp_path / "f.bin.part").read_bytes()
    assert 0 < len(kept) < 100 and kept == DATA[: len(kept)]  # the drip offered 200 over 10 s
    server.script = serve(DATA)
    assert fetch(url, tmp_path, options=OPTS).read_bytes() == DATA
    assert server.requests[-1]["Range"] == f"bytes={len(kept)}-"


def test_headers_that_drip_end_within_the_window(server, tmp_path):
    def slow_headers(h):
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 200:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.02)

    server.script = slow_headers
    opts = FetchOptions(timeout=0.3, retries=0, progress=False, rate_window=0.5)
    with pytest.raises(DownloadError, match="no complete response headers within 0.5 s"):
        fetch(f"{server.url}/f.bin", tmp_path, options=opts)  # the drip lasts 4.5 s
    assert list(tmp_path.iterdir()) == []


def test_a_slow_but_steady_transfer_is_not_a_drip(server, tmp_path):
    server.script = lambda h: drip(h, every_s=0.002, body=DATA[:200])  # ~0.4 s, 500 B/s
    opts = FetchOptions(timeout=5.0, retries=0, progress=False, min_rate=20, rate_window=0.1)
    assert fetch(f"{server.url}/f.bin", tmp_path, options=opts).read_bytes() == DATA[:200]


# ---------------------------------------------------------------- redirects


def test_a_redirect_to_ftp_is_refused_without_connecting(server, tmp_path):
    with socket.socket() as listener:  # stands in for an FTP server: nothing may reach it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        target = f"ftp://127.0.0.1:{listener.getsockname()[1]}/f.bin"
        server.script = lambda h: head(h, "302 Found", Location=target, Content_Length=0)
        with pytest.raises(DownloadError, match=f"redirects to {target}; only http"):
            fetch(f"{server.url}/f.bin", tmp_path, options=OPTS)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert list(tmp_path.iterdir()) == []


def test_an_http_redirect_is_followed(server, tmp_path):
    def moved(h):
        if h.path == "/old.bin":
            head(h, "301 Moved Permanently", Location="/new.bin", Content_Length=0)
        else:
            serve(DATA)(h)

    server.script = moved
    path = fetch(f"{server.url}/old.bin", tmp_path, options=OPTS)
    assert path.name == "old.bin" and path.read_bytes() == DATA
    assert [r["path"] for r in server.requests] == ["/old.bin", "/new.bin"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--min-rate", "-1"], "min_rate (--min-rate) must be finite and >= 0"),
        (["--rate-window", "0"], "rate_window (--rate-window) must be finite and > 0"),
        (["--rate-window", "nan"], "rate_window (--rate-window) must be finite and > 0"),
    ],
)
def test_bad_rate_flags_are_one_line_errors(tmp_path, flags, message):
    proc = subprocess.run(
        [sys.executable, "-m", "data_download", "fetch", "http://127.0.0.1:9/f.bin"]
        + ["--dest", str(tmp_path / "d"), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and message in proc.stderr
    assert not (tmp_path / "d").exists()


# ---------------------------------------------------------------- pins


def test_official_split_files_are_pinned_by_size_and_sha256(server, tmp_path, monkeypatch):
    from data_download import emg2qwerty as e2q
    from data_download import pins

    assert set(pins.SPLITS) == set(e2q.SPLIT_NAMES)
    assert all(pins.SPLITS_COMMIT in url for url in list(e2q.urls().values())[1:])
    fake = b"dataset:\n  train:\n  - {user: u, session: s}\n"
    server.script = serve(fake)
    monkeypatch.setattr(e2q, "SPLITS_URL", server.url)  # "official" files from a wrong server
    with pytest.raises(DownloadError, match=f"announces {len(fake)} bytes, the file is pinned"):
        e2q.download(tmp_path, options=OPTS)
    assert not (tmp_path / "splits" / "generic.yaml").exists()
    # same size, other bytes: refused by the sha256, nothing published
    monkeypatch.setitem(pins.SPLITS, "generic", (len(fake), pins.SPLITS["generic"][1]))
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        e2q.download(tmp_path, options=OPTS)
    assert not (tmp_path / "splits" / "generic.yaml").exists()
    assert part_files(tmp_path / "splits") == []


# ---------------------------------------------------------------- https


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_https_still_verifies_the_certificate_and_its_host(tmp_path):
    """The deadline-guarded HTTPS handler keeps urllib's checks: a certificate nobody
    trusts is refused; trusted (SSL_CERT_FILE), the same server is fetched."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    srv = Scripted()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv.httpd.socket = context.wrap_socket(srv.httpd.socket, server_side=True)
    url = srv.url.replace("http://", "https://") + "/f.bin"
    try:
        with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch(url, tmp_path / "a", options=OPTS)
        proc = subprocess.run(
            [sys.executable, "-m", "data_download", "fetch", url, "--dest", str(tmp_path / "b")]
            + ["--quiet", "--sha256", SHA],
            cwd=ROOT,
            env={**os.environ, "SSL_CERT_FILE": str(cert)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "b" / "f.bin").read_bytes() == DATA
    finally:
        srv.close()
