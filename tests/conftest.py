import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SESSION_HANDLERS = {s: signal.getsignal(s) for s in STOP_SIGNALS}  # Python's, as pytest starts
SESSION_MASK = signal.pthread_sigmask(signal.SIG_BLOCK, [])  # the signals the main thread blocks


def _restore_handlers(when: str) -> None:
    for signum, handler in SESSION_HANDLERS.items():
        if signal.getsignal(signum) is not handler:
            warnings.warn(f"the {signum.name} handler was changed {when}", stacklevel=3)
            signal.signal(signum, handler)
    if signal.pthread_sigmask(signal.SIG_BLOCK, []) != SESSION_MASK:  # blocked: they coalesce
        warnings.warn(f"the blocked signals were changed {when}", stacklevel=3)
        signal.pthread_sigmask(signal.SIG_SETMASK, SESSION_MASK)


@pytest.fixture(autouse=True)
def signal_handlers_restored(request):
    """Each test starts and ends with the SIGINT/SIGTERM handlers and the blocked-signal mask
    the session started with:
    a fixture or test that changes one (in-process code that ignores Ctrl-C, as a DataLoader
    worker's initializer does) is named in a warning and the handler put back, so the
    signal tests see Python's defaults whatever ran before them."""
    _restore_handlers(f"before {request.node.nodeid} (by a fixture or an earlier test)")
    yield
    _restore_handlers(f"by {request.node.nodeid}")


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """The whole book executed once with the smoke profile; returns its build directory."""
    build = tmp_path_factory.mktemp("book-build")
    # Per-cell and whole-run limits: a stuck kernel fails the suite instead of stalling CI.
    return _run_book("smoke", build)


@pytest.fixture(scope="session")
def single_user_book(tmp_path_factory) -> Path:
    """The single-user book (its chapters only) on a synthetic one-user corpus, executed
    once with the single-user-smoke profile; returns its build directory."""
    build = tmp_path_factory.mktemp("single-user-build")
    return _run_book("single-user-smoke", build)


def _run_book(profile: str, build: Path) -> Path:
    """Execute the book with ``profile`` into ``build`` (one-line failure: its output's tail)."""
    proc = subprocess.run(
        [sys.executable, "tools/book.py", "run", "--profile", profile, "--build", str(build)]
        + ["--cell-timeout", "600"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build
