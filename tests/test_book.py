"""The whole book executes through papermill with the smoke profile.

One execution serves every check here: each chapter runs top to bottom, the results
files exist with their promised columns, and a failing cell fails the build by name.
"""

import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = {"profile", "data_source", "device", "wall_time_s", "seed", "git_revision"}
# results table -> columns it promises (beyond provenance)
PROMISED = {
    "table0_corpus": {"part", "sessions", "users", "hours"},
    "table0_calibration": {"measure", "accuracy %", "chance %"},
    "table1_models": {"preset", "family", "parameters", "GFLOPs per s of sEMG", "params (paper)"},
    "table2_scaling": {
        "preset",
        "parameters",
        "cross-user CER %",
        "personalized CER %",
        "cross-user CER % beam",
        "personalized CER % beam",
        "cross-user CER % beam+LM",
        "personalized CER % beam+LM",
        "beam+LM CPU s per sEMG min",
        "cross-user CER % (paper)",
        "personalized CER % (paper)",
    },
    "table3_distillation": {
        "role",
        "preset",
        "parameters",
        "cross-user CER %",
        "cross-user CER % (paper)",
    },
    "table3_temperature": {"temperature", "alpha", "cross-user CER %"},
    "table3_alpha": {"temperature", "alpha", "cross-user CER %"},
    "realtime_bench": {"preset", "params", "stream_p50_ms", "stream_p99_ms", "offline_rtf"},
}


@pytest.mark.slow
def test_every_chapter_executes(smoke_book):
    sources = sorted(p.stem for p in (ROOT / "book").glob("[0-9][0-9]_*.md"))
    executed = sorted(p.stem for p in (smoke_book / "book").glob("[0-9][0-9]_*.ipynb"))
    assert executed == sources
    timings = pd.read_csv(smoke_book / "book" / "timings.csv")
    assert list(timings["chapter"]) == sources


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PROMISED))
def test_results_have_promised_columns(smoke_book, name):
    csv = smoke_book / "results" / f"{name}.csv"
    assert csv.is_file(), f"{name}.csv was not written"
    df = pd.read_csv(csv)
    assert len(df) > 0
    missing = (PROMISED[name] | PROVENANCE) - set(df.columns)
    assert not missing, f"{name}.csv lacks {sorted(missing)}"
    assert (df["profile"] == "smoke").all()
    assert (smoke_book / "results" / f"{name}.md").is_file()


def test_failing_cell_names_chapter_and_cell(tmp_path, monkeypatch, capsys):
    """A chapter whose cell raises stops the build with the chapter and cell named."""
    sys.path.insert(0, str(ROOT / "tools"))
    import book as book_tool

    bad = tmp_path / "book"
    bad.mkdir()
    (bad / "99_broken.md").write_text(
        (ROOT / "book" / "00_introduction.md").read_text().split("\n---\n", 1)[0]
        + "\n---\n\n# Broken\n\n```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = 'smoke'\n"
        "build_dir = ''\ndata_dir = ''\n```\n\n"
        "```{code-cell} ipython3\nraise RuntimeError('deliberate failure')\n```\n"
    )
    monkeypatch.setattr(book_tool, "BOOK", bad)
    code = book_tool.run("smoke", tmp_path / "build", None, None)
    assert code == 1
    err = capsys.readouterr().err
    assert "99_broken.md" in err and "RuntimeError: deliberate failure" in err
