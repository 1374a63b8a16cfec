"""The whole book executes through papermill with the smoke profile.

One execution serves every check here: each chapter runs top to bottom, the results
files exist with their promised columns, and a failing cell fails the build by name.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = {"profile", "data_source", "device", "wall_time_s", "seed", "git_revision"}
INTERVALS = {"seeds", "cross-user CI95 lo", "cross-user CI95 hi", "cross-user seed range"}
STRESS = {"model", "preset", "perturbation", "severity", "cross-user CER %", "CER rise"}
STRESS |= {"cross-user CI95 lo", "cross-user CI95 hi", "personalized CER %", "personalized CI95 lo"}
STRESS |= {"personalized CER rise"}
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
        "cross-user CER % beam+LM (emg2qwerty rule)",
        "beam+LM (emg2qwerty rule) CPU s per sEMG min",
        "cross-user CER % (paper)",
        "personalized CER % (paper)",
        *INTERVALS,
        "personalized CI95 lo",
        "personalized CI95 hi",
        "CER protocol",
    },
    "table3_distillation": {
        "role",
        "preset",
        "parameters",
        "cross-user CER %",
        "cross-user CER % (paper)",
        *INTERVALS,
        "personalized CER %",
        "personalized CI95 lo",
        "personalized CI95 hi",
        "CER protocol",
    },
    "table3_temperature": {"temperature", "alpha", "cross-user CER %", *INTERVALS},
    "table3_alpha": {"temperature", "alpha", "cross-user CER %", *INTERVALS},
    "realtime_bench": {
        "preset",
        "params",
        "stream_p50_ms",
        "stream_p99_ms",
        "offline_rtf",
        "ort_stream_fp32_p99_ms",
        "ort_stream_int8_p99_ms",
        "proj_gap9_mj_per_s",
    },
    "realtime_runtimes": {
        "runtime",
        "step_p99_ms",
        "file_bytes",
        "test_CER",
        "CER_change_vs_torch",
    },
    "realtime_norm_cer": {"featurizer norm", "cross-user CER %", *INTERVALS},
    **{f"robustness_{kind}": STRESS for kind in ("dead_n", "noise_snr", "rotate_k")},
    "robustness_sensor": {
        "model",
        "sensor",
        "zero-shot CER %",
        "zero-shot CI95 lo",
        "fine-tuned CER %",
        "fine-tuned CI95 hi",
        "fine-tune sEMG min per user",
        "fine-tune steps",
    },
    "pose_corpus": {"part", "stages", "users", "sides", "minutes"},
    "pose_baseline": {
        "predictor",
        "cross-user MAE deg",
        "cross-user CI95 lo",
        "cross-user CI95 hi",
    },
    "pose_scaling": {
        "preset",
        "parameters",
        "cross-user MAE deg",
        "cross-user CI95 lo",
        "cross-user CI95 hi",
        "cross-user seed range",
        "personalized MAE deg",
        "personalized CI95 lo",
        "seeds",
    },
    "pose_distillation": {
        "role",
        "preset",
        "parameters",
        "size ratio",
        "cross-user MAE deg",
        "cross-user CI95 lo",
        "personalized MAE deg",
        "alpha",
    },
    "pose_alpha": {"alpha", "cross-user MAE deg", "cross-user CI95 hi", "seeds"},
    "robustness_populations": {
        "preset",
        "parameters",
        "in-population CER %",
        "in-population CI95 lo",
        "wide-placement CER %",
        "wide-placement CI95 hi",
        "thick-skin gap",
        "fast-typists CER %",
    },
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


sys.path.insert(0, str(ROOT / "tools"))
import book as book_tool  # noqa: E402


def one_chapter_book(folder: Path, code: str) -> Path:
    """A book of one chapter, ``99_broken.md``, whose second cell is ``code``."""
    folder.mkdir()
    (folder / "99_broken.md").write_text(
        (ROOT / "book" / "00_introduction.md").read_text().split("\n---\n", 1)[0]
        + "\n---\n\n# Broken\n\n```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = 'smoke'\n"
        f"build_dir = ''\ndata_dir = ''\n```\n\n```{{code-cell}} ipython3\n{code}\n```\n"
    )
    return folder


def test_failing_cell_names_chapter_and_cell(tmp_path, monkeypatch, capsys):
    """A chapter whose cell raises stops the build with the chapter and cell named."""
    bad = one_chapter_book(tmp_path / "book", "raise RuntimeError('deliberate failure')")
    monkeypatch.setattr(book_tool, "BOOK", bad)
    code = book_tool.run("smoke", tmp_path / "build", None, None)
    assert code == 1
    err = capsys.readouterr().err
    assert "99_broken.md" in err and "RuntimeError: deliberate failure" in err


def test_cell_past_its_timeout_fails_the_build(tmp_path, monkeypatch, capsys):
    """A cell that does not finish stops the build instead of hanging it."""
    stuck = one_chapter_book(tmp_path / "book", "import time\ntime.sleep(600)")
    monkeypatch.setattr(book_tool, "BOOK", stuck)
    code = book_tool.run("smoke", tmp_path / "build", None, None, cell_timeout=2)
    assert code == 1
    err = capsys.readouterr().err
    assert "99_broken.md" in err and "--cell-timeout 2" in err


def test_relative_paths_resolve_against_the_invoking_directory(tmp_path, monkeypatch):
    """The chapters run in book/; DATA=, BUILD= and a profile file path given relative to
    where make ran must not be read against book/."""
    monkeypatch.chdir(tmp_path)
    params = book_tool.chapter_parameters("mine.toml", Path("out"), "data/emg2qwerty")
    assert params == {
        "profile": str(tmp_path / "mine.toml"),
        "build_dir": str(tmp_path / "out"),
        "data_dir": str(tmp_path / "data" / "emg2qwerty"),
    }
    assert book_tool.chapter_parameters("laptop", tmp_path, None)["profile"] == "laptop"
    assert book_tool.chapter_parameters("laptop", tmp_path, None)["data_dir"] == ""


def test_lab_copies_follow_the_last_run_and_keep_edits(tmp_path):
    import jupytext

    build = tmp_path / "build"
    (build / "book").mkdir(parents=True)
    params = book_tool.chapter_parameters("smoke", build, None)
    (build / "book" / "run.json").write_text(json.dumps(params))
    sources = {p.name: p.read_text() for p in (ROOT / "book").glob("*.md")}
    folder = book_tool.lab_copies(build)
    copies = sorted(folder.glob("[0-9][0-9]_*.md"))
    assert [c.name for c in copies] == sorted(n for n in sources if n[:2].isdigit())
    for copy in copies:
        nb = jupytext.read(copy)
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(cells) == 1 and f'build_dir = "{build.resolve()}"' in cells[0].source
        assert 'profile = "smoke"' in cells[0].source
    settings = json.loads(
        (folder / ".jupyter/labconfig/default_setting_overrides.json").read_text()
    )
    viewers = settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers["markdown"] == viewers["myst"] == "Jupytext Notebook"
    # a student's edit survives the next `make lab`, which follows a new profile
    copies[0].write_text(copies[0].read_text() + "\nA note of mine.\n")
    params["profile"] = "laptop"
    (build / "book" / "run.json").write_text(json.dumps(params))
    book_tool.lab_copies(build)
    assert "A note of mine." in copies[0].read_text()
    assert 'profile = "laptop"' in copies[0].read_text()
    assert {p.name: p.read_text() for p in (ROOT / "book").glob("*.md")} == sources


def test_show_in_sets_widget_outputs_without_capture():
    """The playground's widgets update their figure without `with out:` (see show_in)."""
    import ipywidgets as widgets
    import plotly.graph_objects as go
    import plotly.io as pio

    from semgkit.repro.notebook import show_in

    pio.renderers.default = "plotly_mimetype"
    out = widgets.Output()
    for y in ([1, 2], [3, 4]):
        show_in(out, go.Figure(go.Scatter(y=y)))
    assert len(out.outputs) == 1
    figure = out.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    assert list(figure["data"][0]["y"]) == [3, 4]


@pytest.mark.slow
def test_lab_opens_chapters_as_notebooks(tmp_path):
    """`book.py lab` starts JupyterLab whose settings open the chapters as notebooks."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "tools/book.py", "lab", "--build", str(tmp_path), "--no-browser"]
    command += [f"--port={port}", "--IdentityProvider.token=t", "--allow-root"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token=t", timeout=5)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "JupyterLab did not start in 120 s"
                time.sleep(1)
        url = f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin?token=t"
        schema = json.load(urllib.request.urlopen(url, timeout=30))["schema"]
        assert schema["properties"]["defaultViewers"]["default"]["myst"] == "Jupytext Notebook"
        url = f"{base}/api/contents/03_scaling.md?type=notebook&token=t"
        assert json.load(urllib.request.urlopen(url, timeout=30))["type"] == "notebook"
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- real-data profiles at one user's or a few users' scale -------------------------------


@pytest.mark.slow
def test_single_user_book_runs_its_chapters_and_names_its_protocol(single_user_book):
    """The single-user book on a synthetic one-user corpus: the profile's chapters only,
    one CER column (the user's own test session), no personalization, no paper column."""
    from semgkit.repro.profiles import load_profile

    wanted = load_profile("single-user-smoke").chapters
    assert wanted == ("00", "02", "03", "04", "05")  # inherited from single-user
    executed = sorted(p.stem[:2] for p in (single_user_book / "book").glob("[0-9][0-9]_*.ipynb"))
    assert executed == list(wanted)
    results = single_user_book / "results"
    for name in ("table2_scaling", "table3_distillation", "table3_temperature"):
        df = pd.read_csv(results / f"{name}.csv")
        assert (df["profile"] == "single-user-smoke").all()
        assert {"single-user CER %", "single-user CI95 lo", "CER protocol"} <= set(df.columns)
        leaked = [c for c in df.columns if "cross-user" in c or "personalized CER" in c]
        assert leaked == [] and not [c for c in df.columns if "paper" in c], name
        assert df["single-user CER %"].notna().all()
    table2 = pd.read_csv(results / "table2_scaling.csv")
    assert list(table2["preset"]) == ["lap-xxs", "lap-xs", "tds-laptop"]
    assert (table2["personalized users"] == 0).all()
    assert "single-user CER" in (results / "table2_scaling.md").read_text().splitlines()[0]
    chapter3 = (single_user_book / "book" / "03_scaling.ipynb").read_text()
    assert "personalized-from-scratch setting" in chapter3 and "split 'user0'" in chapter3


def test_a_split_given_to_the_book_travels_in_a_profile_file(tmp_path):
    """`make book PROFILE=single-user SPLIT=user3`: the chapters take only a profile, so
    the split goes into a profile file that extends the named one and keeps its name."""
    from semgkit.repro.profiles import load_profile

    path = book_tool.with_split("single-user", "user3", tmp_path)
    P = load_profile(path)
    base = load_profile("single-user")
    assert P.corpus.split == "user3" and P.name == "single-user"
    assert P.chapters == base.chapters and P.train == base.train
    assert load_profile("single-user", split="user5").corpus.split == "user5"
    assert book_tool.profile_selection("smoke", None)[1] == []
    named = book_tool.profile_selection("single-user", None)[1]
    ch1 = next(c for c in book_tool.chapters() if c.stem.startswith("01"))
    assert named and "01" not in named and book_tool.skip_reason(ch1, ("typing",), named)


def test_profile_setting_is_checked(tmp_path):
    from semgkit.repro.profiles import load_profile

    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "smoke"\n[corpus]\nsetting = "same-user"\n')
    with pytest.raises(ValueError, match=r"\[corpus\] setting: 'same-user'"):
        load_profile(bad)
    assert load_profile("single-user").measure() == "single-user"
    assert not load_profile("few-users").paper_protocol() and load_profile("paper").paper_protocol()


def test_budget_projects_every_run_from_measured_flops():
    """tools/book.py budget: one row per training run, hours = FLOPs / assumed rate."""
    from semgkit.repro import budget
    from semgkit.repro.profiles import load_profile

    table = budget.budget(load_profile("single-user-smoke"))
    runs = list(table["run"])
    assert runs[:3] == ["lap-xxs seed 0", "lap-xs seed 0", "tds-laptop seed 0"]
    assert runs[3:] == [
        "lap-student alone seed 0",
        "lap-student distilled T=2 alpha=0.5 seed 0",
        "total",
    ]
    assert not any("personalized" in r for r in runs)  # the single-user setting
    rows = table[table["run"] != "total"]
    assert (rows["GFLOP per window (measured)"] > 0).all() and (rows["windows"] == 16).all()
    for gb, tflops in budget.ASSUMED_TFLOPS.items():
        column = f"{gb} GB h (projection)"
        assert table[column].iloc[-1] == pytest.approx(rows[column].sum(), abs=0.011)
        hours = rows["PFLOP"] * 1e15 / (tflops * 1e12) / 3600
        assert rows[column].to_numpy() == pytest.approx(hours.to_numpy(), abs=0.006)
    few = budget._runs(load_profile("few-users"))
    tuned = [r["run"] for r in few if "personalized x 8 users" in r["run"]]
    assert len(tuned) == 6 and tuned[-1].startswith("tiny distilled")  # 5 models + distilled


def test_every_shipped_profile_loads_and_names_known_presets():
    from semgkit import models
    from semgkit.repro.profiles import load_profile

    for path in sorted((ROOT / "book" / "profiles").glob("*.toml")):
        P = load_profile(path)
        named = {*P.scaling.ladder, P.scaling.baseline, P.distill.teacher, P.distill.student}
        assert named | set(P.realtime.presets) <= set(models.PRESETS), path.name
        assert all(any(c.name.startswith(p) for c in book_tool.chapters(None)) for p in P.chapters)
