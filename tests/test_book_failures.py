"""The book runner when a chapter's kernel dies or a chapter fails: one line naming the
chapter and the likely cause, no worker process left behind, and no HTML published from
a chapter that did not execute to the end."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

from tests.test_book import book_tool, one_chapter_book

KILL_WITH_WORKERS = """\
import os, signal, threading, time
from pathlib import Path
from semgkit.repro.jobs import run_jobs

threading.Thread(target=run_jobs, args=(time.sleep, [(600,), (600,)], 2), daemon=True).start()
me, children = str(os.getpid()), []
for _ in range(300):  # the two spawn workers, within 30 s
    children = [p for p in os.listdir("/proc") if p.isdigit() and
                open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] == me]
    if len(children) >= 2:
        break
    time.sleep(0.1)
Path(PIDS).write_text(" ".join(children))
time.sleep(1)  # the workers are past their start-up
os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does"""


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_dead_kernel_is_one_line_and_takes_its_workers_with_it(tmp_path, monkeypatch, capsys):
    pids = tmp_path / "pids.txt"
    code = f"PIDS = {str(pids)!r}\n{KILL_WITH_WORKERS}"
    monkeypatch.setattr(book_tool, "BOOK", one_chapter_book(tmp_path / "book", code))
    assert book_tool.run("smoke", tmp_path / "build", None, None) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DeadKernelError" not in err
    assert err.count("\n") == 1 and err.startswith("book: FAILED 99_broken.md: its kernel died")
    assert "memory" in err
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) >= 2
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for pid in left:  # (only if the test fails: leave nothing running)
        os.kill(pid, 9)
    assert left == [], "job workers outlived their kernel"
    executed = nbformat.read(tmp_path / "build" / "book" / "99_broken.ipynb", as_version=4)
    assert executed.metadata["semgkit_book"]["executed"] is False
    # and `html` will not publish it
    with pytest.raises(SystemExit, match="99_broken.ipynb: its kernel died"):
        book_tool.html(tmp_path / "build")
    assert not (tmp_path / "build" / "html").exists()


def test_html_refuses_a_chapter_whose_execution_failed(tmp_path, monkeypatch, capsys):
    build = tmp_path / "build"
    monkeypatch.setattr(book_tool, "BOOK", one_chapter_book(tmp_path / "ok", "x = 1"))
    assert book_tool.run("smoke", build, None, None) == 0
    assert book_tool.html(build) == 0
    page = (build / "html" / "99_broken.html").read_text()

    monkeypatch.setattr(
        book_tool, "BOOK", one_chapter_book(tmp_path / "bad", "raise ValueError('no')")
    )
    assert book_tool.run("smoke", build, None, None) == 1
    with pytest.raises(SystemExit) as info:
        book_tool.html(build)
    message = str(info.value)
    assert "not publishing HTML" in message and "99_broken.ipynb: cell" in message
    assert "ValueError: no" in message
    assert (build / "html" / "99_broken.html").read_text() == page  # the last good site stays


def test_html_judges_notebooks_from_before_the_mark_by_their_cells(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", execution_count=1),
        nbformat.v4.new_code_cell("y = 2"),
    ]
    assert book_tool.unfinished(nb) == "1 cell(s) never ran"
    nb.cells[1].execution_count = 2
    assert book_tool.unfinished(nb) is None
    nb.metadata["papermill"] = {"exception": True}
    assert book_tool.unfinished(nb) == "a cell raised"
    nb.metadata["semgkit_book"] = {"executed": True}
    assert book_tool.unfinished(nb) is None
