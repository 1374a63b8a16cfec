"""Peak disk, bytes streamed and fidelity of a subset download, on a release-shaped archive.

Builds a synthetic archive in emg2qwerty's layout (``emg2qwerty-data-2021-08/`` holding
``--users`` users' session files and ``metadata.csv``, members in a seeded random order,
gzip level 6), with one user holding 18 sessions (16 train / 1 val / 1 test, the shape of
emg2qwerty's ``single_user`` split), one of them of real length (``--big-mb``; the
release's sessions are ~100-300 MB of HDF5). The archive is served by a loopback HTTP
server with Range support, and ``data_download.subset`` fetches that user's split while a
thread sums the blocks of every file under DEST every few milliseconds. Prints the
archive's and the subset's sizes, the peak disk use under DEST (its ratio to the subset),
the bytes streamed before the transfer stopped, whether exactly the wanted sessions were
kept and each is bit-identical to its source, and the time taken.

    python tools/bench_subset.py [--work DIR] [--users 12] [--sessions 48] [--big-mb 200]
        [--order random|wanted-first]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import yaml

from data_download import DownloadError, FetchOptions
from data_download import subset as subset_module
from semgkit.format import GROUP, TIMESERIES

TOP = "emg2qwerty-data-2021-08"
ARCHIVE = f"{TOP}.tar.gz"
ROW_BYTES = 136  # two bands of 16 float32 and one float64 time stamp


def write_session(path: Path, session: str, user: str, rows: int, rng) -> None:
    dtype = np.dtype([("emg_left", "<f4", (16,)), ("emg_right", "<f4", (16,)), ("time", "<f8")])
    data = np.empty(rows, dtype=dtype)
    data["emg_left"] = rng.standard_normal((rows, 16), dtype=np.float32) * 20.0
    data["emg_right"] = rng.standard_normal((rows, 16), dtype=np.float32) * 20.0
    data["time"] = 1.6e9 + np.arange(rows) / 2000.0
    with h5py.File(path, "w") as f:
        group = f.create_group(GROUP)
        group.create_dataset(TIMESERIES, data=data)
        group.attrs.update(
            session_name=session,
            user=user,
            condition="on_keyboard",
            duration_mins=rows / 2000 / 60,
            keystrokes="[]",
            prompts="[]",
        )


def build(work: Path, users: int, sessions: int, big_mb: int, small_mb: float, order_by: str):
    """Write the sessions, metadata.csv, the archive and the single_user-shaped split."""
    rng = np.random.default_rng(0)
    top = work / "src" / TOP
    top.mkdir(parents=True)
    owners = ["89335547"] * 18 + [f"{10_000_000 + i}" for i in range(users - 1)]
    owners += [owners[18 + i % (users - 1)] for i in range(sessions - len(owners))]
    names = [
        f"2021-06-{i % 28 + 1:02}-{1_622_000_000 + i}-keystrokes-dca-study@1-{u}"
        for i, u in enumerate(owners)
    ]
    for i, (name, user) in enumerate(zip(names, owners, strict=True)):
        rows = (big_mb if i == 0 else small_mb) * 1e6 / ROW_BYTES
        write_session(top / f"{name}.hdf5", name, user, int(rows), rng)
    with open(top / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session", "user"])
        w.writerows(zip(names, owners, strict=True))
    order = [f"{n}.hdf5" for n in names] + ["metadata.csv"]
    rng.shuffle(order)
    if order_by == "wanted-first":  # the best case: the transfer can stop early
        order.sort(key=lambda member: member.removesuffix(".hdf5") not in names[:18])
    with tarfile.open(work / ARCHIVE, "w:gz", compresslevel=6) as tar:
        tar.add(top, arcname=TOP, recursive=False)
        for member in order:
            tar.add(top / member, arcname=f"{TOP}/{member}")
    mine = [{"user": 89335547, "session": n} for n in names[:18]]
    split = {"dataset": {"train": mine[:16], "val": mine[16:17], "test": mine[17:]}}
    (work / "single_user_shaped.yaml").write_text(yaml.safe_dump(split, sort_keys=False))
    return top, names[:18], order, len(set(owners))


def serve(path: Path) -> ThreadingHTTPServer:
    """Serve ``path`` at ``/ARCHIVE`` with an ETag, honouring Range (+ If-Range)."""
    size, etag = path.stat().st_size, f'"{path.stat().st_mtime_ns}"'

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            start = 0
            if (rng := self.headers.get("Range")) and self.headers.get("If-Range") == etag:
                start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(size - start))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            self.end_headers()
            with open(path, "rb") as f:
                f.seek(start)
                try:
                    while chunk := f.read(1 << 20):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped: every wanted member is published

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


def whole_pass_rates(work: Path, url: str, opts: FetchOptions) -> dict[str, float]:
    """MB/s of archive for the worst case (a wanted session the archive lacks: every byte
    streams past) and, for scale, for reading the same archive from a local file with
    tarfile alone (no HTTP, no hashing, no checks)."""
    ghost = work / "ghost.yaml"
    ghost.write_text(yaml.safe_dump({"dataset": {"test": [{"user": 1, "session": "absent"}]}}))
    size = (work / ARCHIVE).stat().st_size
    t0 = time.perf_counter()
    try:
        subset_module.download_subset(
            work / "dest-ghost", subset_module.select([str(ghost)], []), url, opts
        )
    except DownloadError as e:
        assert "holds no session absent" in str(e), e
    streamed = time.perf_counter() - t0
    t0 = time.perf_counter()
    with tarfile.open(work / ARCHIVE, "r|gz") as tar:
        for _ in tar:
            pass
    local = time.perf_counter() - t0
    return {
        "whole_archive_streamed_MB_per_s": round(size / streamed / 1e6, 1),
        "local_tarfile_read_MB_per_s": round(size / local / 1e6, 1),
    }


def disk_use(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except FileNotFoundError:  # renamed or removed between listing and stat
                pass
    return total


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--sessions", type=int, default=48)
    parser.add_argument("--big-mb", type=int, default=200, help="the real-length session, MB")
    parser.add_argument("--small-mb", type=float, default=4.0, help="every other session, MB")
    parser.add_argument(
        "--order",
        choices=("random", "wanted-first"),
        default="random",
        help="members in a seeded random order, or the wanted ones first (best case)",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-subset-"))
    t0 = time.perf_counter()
    top, wanted, order, n_users = build(
        work, args.users, args.sessions, args.big_mb, args.small_mb, args.order
    )
    print(
        f"built in {time.perf_counter() - t0:.1f} s: {len(order) - 1} sessions of {n_users} "
        f"users, archive {(work / ARCHIVE).stat().st_size:,} bytes"
    )
    last = max(order.index(f"{s}.hdf5") for s in wanted)
    print(f"last wanted member: {last + 1} of {len(order)} members in archive order")

    streamed: list[tuple[int, int]] = []

    class Recording(subset_module.ArchiveStream):
        def close(self):
            if not self.closed:
                streamed.append((self.position, self.total))
            super().close()

    subset_module.ArchiveStream = Recording
    httpd = serve(work / ARCHIVE)
    dest, peak, samples, done = work / "dest", [0], [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], disk_use(dest))
            samples[0] += 1
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    selection = subset_module.select([str(work / "single_user_shaped.yaml")], [])
    opts = FetchOptions(progress=False, timeout=30)
    subset_module.download_subset(
        dest, selection, f"http://127.0.0.1:{httpd.server_address[1]}", opts
    )
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    peak[0] = max(peak[0], disk_use(dest))
    rates = whole_pass_rates(work, f"http://127.0.0.1:{httpd.server_address[1]}", opts)
    httpd.shutdown()

    kept = sorted(p.stem for p in dest.glob("*.hdf5"))
    subset_bytes = sum((top / f"{s}.hdf5").stat().st_blocks * 512 for s in wanted)
    identical = all(sha256(dest / f"{s}.hdf5") == sha256(top / f"{s}.hdf5") for s in wanted)
    position, total = streamed[0]
    figures = {
        "sessions_in_archive": len(order) - 1,
        "users_in_archive": n_users,
        "archive_bytes": total,
        "largest_session_bytes": (top / f"{wanted[0]}.hdf5").stat().st_size,
        "subset_sessions_wanted": len(wanted),
        "exactly_the_wanted_sessions_kept": kept == sorted(wanted),
        "other_files_in_dest": sorted(
            str(p.relative_to(dest)) for p in dest.rglob("*") if p.suffix != ".hdf5"
        ),
        "subset_disk_bytes": subset_bytes,
        "peak_disk_bytes_under_dest": peak[0],
        "peak_over_subset": round(peak[0] / subset_bytes, 5),
        "disk_samples": samples[0],
        "bytes_streamed": position,
        "fraction_of_archive_streamed": round(position / total, 4),
        "bit_identical": identical,
        "seconds": round(seconds, 1),
        **rates,
    }
    print(json.dumps(figures, indent=2))
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
