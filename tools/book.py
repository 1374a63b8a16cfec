"""Build the book: jupytext chapters -> notebooks -> papermill execution -> static HTML.

    python tools/book.py run  --profile smoke|laptop|paper [--data DIR] [--split NAME] [--build build]
    python tools/book.py html [--build build]
    python tools/book.py lab  [--build build]
    python tools/book.py plan --profile paper --data DIR [--nproc 8]
    python tools/book.py budget --profile single-user

`run` writes the unexecuted notebooks to build/book/src/, the executed ones to
build/book/, per-chapter wall times to build/book/timings.csv and the run's parameters
to build/book/run.json (which `html` and `lab` follow). A failing cell stops the build
and names the chapter, the cell and the error; so does a cell that runs past
`--cell-timeout`, and a kernel that dies (one line: the likely cause is memory). Each
executed notebook records whether it finished; `html` refuses to publish one that did not.

A chapter belongs to a task (typing, or pose: `CHAPTER_TASKS`); `run` executes those of
the profile's `tasks` and skips the others (a pose-only profile such as `pose-mini` runs
the pose chapter alone), removing a skipped chapter's executed copy from an earlier run so
that `html` publishes this run's chapters only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def chapters(only: list[str] | None = None) -> list[Path]:
    """Chapter sources in reading order: book/NN_name.md."""
    found = sorted(p for p in BOOK.glob("[0-9][0-9]_*.md"))
    if only:
        found = [p for p in found if any(p.stem.startswith(o) or p.name == o for o in only)]
        if not found:
            raise SystemExit(f"book: no chapter matches {only}")
    return found


CHAPTER_TASKS = {"08_pose": "pose"}  # chapter stem -> task; every other chapter: typing


def chapter_task(chapter: Path) -> str:
    return CHAPTER_TASKS.get(chapter.stem, "typing")


def profile_selection(profile: str, data: str | None) -> tuple[tuple[str, ...], list[str]]:
    """The tasks whose chapters the profile runs (``tasks``) and the chapters it names
    (``chapters``; empty: every chapter of those tasks)."""
    from semgkit.repro.profiles import load_profile

    try:
        P = load_profile(profile, data_dir=data)
    except (ValueError, FileNotFoundError) as err:  # before any chapter runs: one line
        raise SystemExit(f"book: {err}") from None
    return P.tasks, list(P.chapters)


def skip_reason(chapter: Path, tasks: tuple[str, ...], named: list[str]) -> str | None:
    """Why the profile does not run this chapter, or None when it does."""
    if chapter_task(chapter) not in tasks:
        return f"a {chapter_task(chapter)} chapter; the profile runs {', '.join(tasks)}"
    if named and not any(chapter.stem.startswith(n) for n in named):
        return f"the profile's chapters are {', '.join(named)}"
    return None


def chapter_parameters(profile: str, build: Path, data: str | None) -> dict[str, str]:
    """The papermill parameters of every chapter, with paths made absolute here.

    The chapters run in book/, so a relative ``--data`` or profile path would otherwise
    be read against book/ rather than the directory the command was started from."""
    if profile.endswith(".toml"):
        profile = str(Path(profile).expanduser().resolve())
    return {
        "profile": profile,
        "build_dir": str(build.resolve()),
        "data_dir": str(Path(data).expanduser().resolve()) if data else "",
    }


# A cell that runs longer than this fails the build instead of hanging it (laptop
# chapters' longest cell: about 15 minutes on 2 cores).
CELL_TIMEOUT_S = 3600


def with_split(profile: str, split: str, build: Path) -> str:
    """A profile file in ``build`` that is ``profile`` with its corpus split set to
    ``split`` (``make book PROFILE=single-user SPLIT=user3``): the chapters take only a
    profile, so the split travels inside one. Same name, so tables name the profile."""
    from semgkit.atomic import atomic_write
    from semgkit.repro.profiles import find_profile, load_profile

    base = load_profile(profile)
    folder = build / "book" / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{base.name}-{split}.toml"
    text = (
        f"extends = {json.dumps(str(find_profile(profile).resolve()))}\n"
        f"name = {json.dumps(base.name)}\n"
        f"description = {json.dumps(f'{base.description} (split {split})')}\n\n"
        f"[corpus]\nsplit = {json.dumps(split)}\n"
    )
    atomic_write(path, text)
    return str(path.resolve())


def run(
    profile: str,
    build: Path,
    data: str | None,
    only: list[str] | None,
    cell_timeout: int = CELL_TIMEOUT_S,
    split: str | None = None,
) -> int:
    import jupytext
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from semgkit.atomic import atomic_write

    src_dir, out_dir = build / "book" / "src", build / "book"
    src_dir.mkdir(parents=True, exist_ok=True)
    if split:
        profile = with_split(profile, split, build)
    params = chapter_parameters(profile, build, data)
    tasks, named = profile_selection(params["profile"], data)
    timings = []
    for chapter in chapters(only):
        if why := skip_reason(chapter, tasks, named):
            (out_dir / f"{chapter.stem}.ipynb").unlink(missing_ok=True)  # not this run's
            print(f"book: skipping {chapter.name} ({why})", flush=True)
            continue
        notebook = src_dir / f"{chapter.stem}.ipynb"
        jupytext.write(jupytext.read(chapter), notebook)
        executed = out_dir / f"{chapter.stem}.ipynb"
        executed.unlink(missing_ok=True)  # an older run's copy must not pass for this one
        print(f"book: {chapter.name} (profile {profile})", flush=True)
        start = time.perf_counter()
        failure = None
        try:
            papermill.execute_notebook(
                notebook,
                executed,
                parameters=params,
                cwd=str(BOOK),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                execution_timeout=cell_timeout or None,
            )
        except PapermillExecutionError as err:
            failure = (
                f"cell {err.exec_count} (code cell #{err.cell_index}): {err.ename}: {err.evalue}"
            )
            detail = f"\n  executed notebook with the traceback: {executed}"
        except CellTimeoutError as err:
            failure = (
                f"a cell ran past --cell-timeout {cell_timeout} s ({str(err).splitlines()[0]})"
            )
            detail = ""
        except DeadKernelError:
            failure = (
                "its kernel died, most likely killed for lack of memory (the system ends the "
                "largest process when memory runs out; its training workers ended with it); "
                "free memory or use a smaller profile, then rerun"
            )
            detail = ""
        except KeyboardInterrupt:
            mark_executed(executed, "interrupted (Ctrl-C)")
            raise
        mark_executed(executed, failure)
        if failure is not None:
            sep = ", " if failure.startswith("cell ") else ": "
            print(f"book: FAILED {chapter.name}{sep}{failure}{detail}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - start
        timings.append((chapter.stem, elapsed))
        print(f"book: {chapter.name} done in {elapsed:.1f} s", flush=True)
    lines = ["chapter,seconds,profile"] + [f"{c},{s:.1f},{profile}" for c, s in timings]
    (out_dir / "timings.csv").write_text("\n".join(lines) + "\n")
    atomic_write(out_dir / "run.json", json.dumps(params, indent=1) + "\n")
    print(f"book: {len(timings)} chapter(s) in {sum(s for _, s in timings):.1f} s -> {out_dir}")
    return 0


MARK = "semgkit_book"  # notebook metadata: {"executed": bool, "failure": why}


def mark_executed(notebook: Path, failure: str | None) -> None:
    """Record in an executed notebook whether its execution finished (``failure`` None),
    so that `html` publishes only chapters that did."""
    import nbformat

    from semgkit.atomic import atomic_write

    if not notebook.is_file():
        return
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata[MARK] = {"executed": failure is None, **({"failure": failure} if failure else {})}
    atomic_write(notebook, nbformat.writes(nb))


def unfinished(nb) -> str | None:
    """Why an executed notebook is not a finished chapter, or None if it is. Notebooks
    from before the mark existed are judged by papermill's record and their cells."""
    mark = nb.metadata.get(MARK)
    if mark is not None:
        return None if mark.get("executed") else mark.get("failure", "its execution failed")
    if nb.metadata.get("papermill", {}).get("exception"):
        return "a cell raised"
    skipped = [
        c
        for c in nb.cells
        if c.cell_type == "code" and c.source.strip() and c.get("execution_count") is None
    ]
    return f"{len(skipped)} cell(s) never ran" if skipped else None


def refuse_unfinished(executed: list[Path]) -> None:
    """`html` publishes a finished book only: a chapter whose execution failed (or was cut
    short) would pass for a result."""
    import nbformat

    bad = [(p, why) for p in executed if (why := unfinished(nbformat.read(p, as_version=4)))]
    if bad:
        listed = "; ".join(f"{p.name}: {why}" for p, why in bad)
        raise SystemExit(
            f"book: not publishing HTML: {len(bad)} chapter(s) did not execute to the end "
            f"({listed}); rerun `make book`, or delete {bad[0][0]} to publish the others"
        )


PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
TEMPLATE = Path(__file__).resolve().parent / "book_template"
# MathJax 2 as shipped by the jupyter-server-mathjax package: maths renders offline.
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_NOTE = (
    '<p class="book-widget-note">An interactive widget: it runs in JupyterLab '
    "(<code>make lab</code>). The static edition shows a kernel-free version further down.</p>"
)


def _static_outputs(nb) -> int:
    """Plotly outputs -> HTML drawn by the local plotly.js. Widget views need a kernel:
    in a `hide-input` cell (the playground's widgets) they become a short note, elsewhere
    (progress bars) they are dropped."""
    import plotly.graph_objects as go
    import plotly.io as pio

    count = 0
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                fig = go.Figure(data[PLOTLY_MIME])
                html = pio.to_html(fig, include_plotlyjs=False, full_html=False)
                output["data"] = {"text/html": html}
                count += 1
            elif WIDGET_MIME in data:
                if "hide-input" not in cell.metadata.get("tags", []):
                    continue
                output["data"] = {"text/html": WIDGET_NOTE}
            outputs.append(output)
        if cell.cell_type == "code":
            cell.outputs = outputs
    return count


def _title(nb, fallback: str) -> str:
    """The chapter's first level-1 heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source[2:].splitlines()[0].strip()
    return fallback


def _exporter():
    """nbconvert's lab template plus book navigation (tools/book_template), no CDN."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    from traitlets.config import Config

    config = Config()
    # papermill's injected cell and the chapter's own defaults: noise for a reader
    config.TagRemovePreprocessor.remove_cell_tags = {"parameters", "injected-parameters"}
    exporter = HTMLExporter(
        config=config,
        template_name="book_template",
        extra_template_basedirs=[str(TEMPLATE.parent)],
        mathjax_url=MATHJAX_URL,
        exclude_anchor_links=True,
    )
    exporter.register_preprocessor(TagRemovePreprocessor(config=config), enabled=True)
    return exporter


def html(build: Path) -> int:
    """Static, offline HTML of the executed notebooks of the last `run`, whatever its
    profile; executes nothing. plotly.js and MathJax are copied beside the pages."""
    import jupyter_server_mathjax
    import nbformat
    import plotly

    executed = sorted((build / "book").glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise SystemExit(
            f"book: no executed chapters under {build / 'book'}; run `make book` first"
        )
    refuse_unfinished(executed)
    out = build / "html"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", out)
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, out / "mathjax", ignore=shutil.ignore_patterns("localization"))
    shutil.copy(TEMPLATE / "book.css", out)
    notebooks = [nbformat.read(p, as_version=4) for p in executed]
    pages = [
        {"href": f"{p.stem}.html", "title": _title(nb, p.stem)}
        for p, nb in zip(executed, notebooks, strict=True)
    ]
    exporter = _exporter()
    for i, (nb, page) in enumerate(zip(notebooks, pages, strict=True)):
        figures = _static_outputs(nb)
        nav = {
            "pages": pages,
            "current": i,
            "prev": pages[i - 1] if i > 0 else None,
            "next": pages[i + 1] if i + 1 < len(pages) else None,
        }
        body, _ = exporter.from_notebook_node(
            nb, resources={"metadata": {"name": page["title"]}, "book": nav}
        )
        (out / page["href"]).write_text(body)
        print(f"book: {page['href']} ({figures} figure(s))")
    (out / "index.html").write_text(_index(pages, build))
    print(f"book: {len(pages)} chapter(s) -> {out}")
    return 0


def _index(pages: list[dict[str, str]], build: Path) -> str:
    """The contents page, saying which profile produced the pages."""
    import html as html_lib

    run_file = build / "book" / "run.json"
    profile = json.loads(run_file.read_text())["profile"] if run_file.is_file() else "?"
    items = "".join(
        f'<li><a href="{p["href"]}">{html_lib.escape(p["title"])}</a></li>' for p in pages
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>semgkit book</title><link rel='stylesheet' href='book.css'></head>"
        "<body class='book-index'><main><h1>semgkit: Scaling and Distilling Transformer "
        f"Models for sEMG</h1><p>Executed with the <code>{html_lib.escape(Path(profile).stem)}"
        f"</code> profile.</p><ol class='book-contents'>{items}</ol></main></body></html>"
    )


def last_run(build: Path) -> dict[str, str]:
    """The parameters of the last `run` into ``build`` (laptop, the default, if none)."""
    run_file = build / "book" / "run.json"
    if run_file.is_file():
        return json.loads(run_file.read_text())
    print(f"book: no {run_file} yet (`make book` writes it); using the laptop profile")
    return chapter_parameters("laptop", build, None)


def lab_copies(build: Path) -> Path:
    """Copies of the chapters in ``build/lab`` for students to edit, their parameters cell
    set to the last run's profile; JupyterLab settings there open them as notebooks.

    An existing copy keeps the student's edits: only its parameters cell is refreshed."""
    import jupytext

    params = last_run(build)
    folder = build / "lab"
    folder.mkdir(parents=True, exist_ok=True)
    source = "\n".join(f"{k} = {json.dumps(v)}" for k, v in params.items())
    for chapter in chapters(None):
        copy = folder / chapter.name
        nb = jupytext.read(copy if copy.is_file() else chapter)
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = source
        jupytext.write(nb, copy, fmt="md:myst")
    # jupytext's own setting: Markdown and MyST files open as notebooks on double-click
    viewers = {kind: "Jupytext Notebook" for kind in ("markdown", "myst")}
    settings = {"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": viewers}}
    labconfig = folder / ".jupyter" / "labconfig" / "default_setting_overrides.json"
    labconfig.parent.mkdir(parents=True, exist_ok=True)
    labconfig.write_text(json.dumps(settings, indent=2) + "\n")
    return folder


def lab(build: Path, extra: list[str]) -> int:
    """JupyterLab on the students' copies of the chapters (see `lab_copies`)."""
    import os

    folder = lab_copies(build)
    env = dict(os.environ)
    config_path = [str(folder / ".jupyter"), env.get("JUPYTER_CONFIG_PATH", "")]
    env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in config_path if p)
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", *extra]
    print(f"book: JupyterLab on {folder} (profile {Path(last_run(build)['profile']).stem})")
    sys.stdout.flush()
    # the server replaces this process, so Ctrl-C or a terminate reaches it (a child
    # server outlived a terminated `book.py lab`)
    os.execve(sys.executable, command, env)
    return 0  # not reached


def plan(profile: str, build: Path, data: str | None, nproc: int) -> int:
    """Print one torchrun command per training run of chapters 3 and 4 (teachers first).

    Each run lands where the book's cache looks for it, so `make book` afterwards only
    evaluates: the way to train the paper profile on several GPUs."""
    from dataclasses import asdict

    from semgkit.repro import recipes
    from semgkit.repro.profiles import load_profile

    P = load_profile(profile, data_dir=data, build_dir=build.resolve())
    folder = P.build_dir / "cache" / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    for config in recipes.planned_configs(P):
        target = recipes.run_dir(P, config)
        if (target / "done.json").is_file():
            print(f"# done: {target}")
            continue
        spec = folder / f"{target.name}.json"
        spec.write_text(json.dumps(asdict(config), indent=1))
        resume = " --resume" if (target / "last.pt").is_file() else ""
        print(
            f"torchrun --nproc_per_node {nproc} -m semgkit train --config {spec} --out {target}{resume}"
        )
    data_flag = f" DATA={data}" if data else ""
    print(f"# then: make book PROFILE={profile}{data_flag}")
    return 0


def budget(profile: str, split: str | None) -> int:
    """Print the profile's GPU budget (semgkit.repro.budget): measured FLOPs and memory per
    window, projected hours and micro-batch memory per GPU class. Needs no data."""
    from semgkit.repro.budget import ASSUMED_TFLOPS
    from semgkit.repro.budget import budget as gpu_budget
    from semgkit.repro.profiles import load_profile

    P = load_profile(profile, split=split)
    print(f"profile {P.name}: {P.description}")
    print(gpu_budget(P).to_markdown(index=False))
    rates = ", ".join(f"{gb} GB {t:g}" for gb, t in ASSUMED_TFLOPS.items())
    print(f"hours: projected at an assumed sustained TFLOP/s per GPU class ({rates})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the chapters with papermill")
    p_run.add_argument("--profile", default="laptop")
    p_run.add_argument("--data", default=None, help="real data directory (paper profile)")
    p_run.add_argument("--build", type=Path, default=ROOT / "build")
    p_run.add_argument("--split", default=None, help="the corpus split (single-user: user3)")
    p_run.add_argument(
        "--only", nargs="*", help="chapter prefixes to run, e.g. 00 03 (default: the profile's)"
    )
    p_run.add_argument(
        "--cell-timeout",
        type=int,
        default=CELL_TIMEOUT_S,
        help=f"seconds a cell may run before the build fails (0: no limit; default {CELL_TIMEOUT_S})",
    )
    p_html = sub.add_parser("html", help="static HTML edition of the executed book")
    p_html.add_argument("--build", type=Path, default=ROOT / "build")
    p_lab = sub.add_parser("lab", help="JupyterLab on editable copies of the chapters")
    p_lab.add_argument("--build", type=Path, default=ROOT / "build")
    p_plan = sub.add_parser("plan", help="torchrun commands that pre-train the book's runs")
    p_plan.add_argument("--profile", default="paper")
    p_plan.add_argument("--data", default=None, help="real data directory (paper profile)")
    p_plan.add_argument("--build", type=Path, default=ROOT / "build")
    p_plan.add_argument("--nproc", type=int, default=8, help="GPUs per node")
    p_budget = sub.add_parser("budget", help="a profile's projected GPU hours and memory")
    p_budget.add_argument("--profile", default="single-user")
    p_budget.add_argument("--split", default=None)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "lab":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "run":
        return run(args.profile, args.build, args.data, args.only, args.cell_timeout, args.split)
    if args.command == "plan":
        return plan(args.profile, args.build, args.data, args.nproc)
    if args.command == "budget":
        return budget(args.profile, args.split)
    if args.command == "lab":
        return lab(args.build, extra)
    return html(args.build)


if __name__ == "__main__":
    raise SystemExit(main())
