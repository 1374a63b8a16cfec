"""The static HTML edition loads in headless Chromium, offline, with every figure drawn."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
    "--dump-dom",
]

if CHROMIUM is None and os.environ.get("CI"):
    pytest.fail("chromium is missing on CI (.ci/run installs it)", pytrace=False)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def html_book(smoke_book):
    proc = subprocess.run(
        [sys.executable, "tools/book.py", "html", "--build", str(smoke_book)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return smoke_book / "html"


def render(page: Path, profile_dir: Path) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages that report errors."""
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if re.search(r"Uncaught|Error|Failed to load", line)]
    return proc.stdout, errors


def test_index_links_every_chapter(html_book, smoke_book):
    index = (html_book / "index.html").read_text()
    for notebook in sorted((smoke_book / "book").glob("[0-9][0-9]_*.ipynb")):
        assert f'href="{notebook.stem}.html"' in index


def test_pages_are_offline(html_book):
    for page in html_book.glob("*.html"):
        remote = re.findall(r"<script[^>]+src=\"https?://", page.read_text())
        assert not remote, f"{page.name} loads scripts from the network"


def test_every_chapter_renders_its_figures_without_js_errors(html_book, tmp_path):
    pages = sorted(html_book.glob("[0-9][0-9]_*.html"))
    assert pages
    for page in pages:
        source = page.read_text()
        expected = source.count('class="plotly-graph-div"')
        dom, errors = render(page, tmp_path / page.stem)
        assert not errors, f"{page.name}: JavaScript errors: {errors}"
        drawn = len(re.findall(r'class="main-svg"', dom))
        # plotly draws two stacked <svg class="main-svg"> per figure
        assert drawn >= expected, f"{page.name}: {drawn} svg layers for {expected} figure(s)"
        assert "</html>" in dom
