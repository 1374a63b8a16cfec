import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    """The whole book executed once with the smoke profile; returns its build directory."""
    build = tmp_path_factory.mktemp("book-build")
    proc = subprocess.run(
        [sys.executable, "tools/book.py", "run", "--profile", "smoke", "--build", str(build)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build
