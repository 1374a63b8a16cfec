"""Build the book: jupytext chapters -> notebooks -> papermill execution -> static HTML.

    python tools/book.py run  --profile smoke|laptop|paper [--data DIR] [--build build]
    python tools/book.py html [--build build]
    python tools/book.py plan --profile paper --data DIR [--nproc 8]

`run` writes the unexecuted notebooks to build/book/src/, the executed ones to
build/book/, and per-chapter wall times to build/book/timings.csv. A failing cell stops
the build and names the chapter, the cell and the error.
"""

from __future__ import annotations

import argparse
import json
import re
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


def run(profile: str, build: Path, data: str | None, only: list[str] | None) -> int:
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    src_dir, out_dir = build / "book" / "src", build / "book"
    src_dir.mkdir(parents=True, exist_ok=True)
    timings = []
    for chapter in chapters(only):
        notebook = src_dir / f"{chapter.stem}.ipynb"
        jupytext.write(jupytext.read(chapter), notebook)
        executed = out_dir / f"{chapter.stem}.ipynb"
        params = {"profile": profile, "build_dir": str(build.resolve()), "data_dir": data or ""}
        print(f"book: {chapter.name} (profile {profile})", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                notebook,
                executed,
                parameters=params,
                cwd=str(BOOK),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
            )
        except PapermillExecutionError as err:
            print(
                f"book: FAILED {chapter.name}, cell {err.exec_count} (code cell #{err.cell_index}): "
                f"{err.ename}: {err.evalue}\n  executed notebook with the traceback: {executed}",
                file=sys.stderr,
            )
            return 1
        elapsed = time.perf_counter() - start
        timings.append((chapter.stem, elapsed))
        print(f"book: {chapter.name} done in {elapsed:.1f} s", flush=True)
    lines = ["chapter,seconds,profile"] + [f"{c},{s:.1f},{profile}" for c, s in timings]
    (out_dir / "timings.csv").write_text("\n".join(lines) + "\n")
    print(f"book: {len(timings)} chapter(s) in {sum(s for _, s in timings):.1f} s -> {out_dir}")
    return 0


PLOTLY_MIME = "application/vnd.plotly.v1+json"
# The lab template loads require.js and MathJax from a CDN; the offline edition needs
# neither (figures are drawn by a local plotly.min.js, without require.js).
CDN_SCRIPT = re.compile(r"<script[^>]*src=\"https?://[^>]*>\s*</script>\s*", re.S)


def _static_figures(nb) -> int:
    """Replace each plotly mimetype output by plain HTML that calls the local plotly.js."""
    import plotly.graph_objects as go
    import plotly.io as pio

    count = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                fig = go.Figure(data[PLOTLY_MIME])
                html = pio.to_html(fig, include_plotlyjs=False, full_html=False)
                output["data"] = {"text/html": html}
                count += 1
    return count


def html(build: Path) -> int:
    """Static, offline HTML of the executed notebooks, with plotly.js shipped beside them."""
    import nbformat
    import plotly
    from nbconvert import HTMLExporter

    executed = sorted((build / "book").glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise SystemExit(
            f"book: no executed chapters under {build / 'book'}; run `make book` first"
        )
    out = build / "html"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", out)
    exporter = HTMLExporter(template_name="lab")
    links = []
    for nb_path in executed:
        nb = nbformat.read(nb_path, as_version=4)
        title = next(
            (
                c.source.lstrip("# ").splitlines()[0]
                for c in nb.cells
                if c.cell_type == "markdown" and c.source.startswith("# ")
            ),
            nb_path.stem,
        )
        figures = _static_figures(nb)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
        body = CDN_SCRIPT.sub("", body)
        body = body.replace("</head>", '<script src="plotly.min.js"></script>\n</head>', 1)
        (out / f"{nb_path.stem}.html").write_text(body)
        print(f"book: {nb_path.stem}.html ({figures} figure(s))")
        links.append(f'<li><a href="{nb_path.stem}.html">{title}</a></li>')
    index = (
        "<!doctype html><html><head><meta charset='utf-8'><title>semgkit book</title></head><body>"
        "<h1>semgkit: Scaling and Distilling Transformer Models for sEMG</h1><ol>"
        + "".join(links)
        + "</ol></body></html>"
    )
    (out / "index.html").write_text(index)
    print(f"book: {len(executed)} chapter(s) -> {out}")
    return 0


def plan(profile: str, build: Path, data: str | None, nproc: int) -> int:
    """Print one torchrun command per training run of chapters 3 and 4 (teachers first).

    Each run lands where the book's cache looks for it, so `make book` afterwards only
    evaluates: the way to train the paper profile on several GPUs."""
    from dataclasses import asdict

    from semgkit import experiments
    from semgkit.profiles import load_profile

    P = load_profile(profile, data_dir=data, build_dir=build.resolve())
    folder = P.build_dir / "cache" / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    for config in experiments.planned_configs(P):
        target = experiments.run_dir(P, config)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the chapters with papermill")
    p_run.add_argument("--profile", default="laptop")
    p_run.add_argument("--data", default=None, help="real data directory (paper profile)")
    p_run.add_argument("--build", type=Path, default=ROOT / "build")
    p_run.add_argument("--only", nargs="*", help="chapter prefixes to run, e.g. 00 03")
    p_html = sub.add_parser("html", help="static HTML edition of the executed book")
    p_html.add_argument("--build", type=Path, default=ROOT / "build")
    p_plan = sub.add_parser("plan", help="torchrun commands that pre-train the book's runs")
    p_plan.add_argument("--profile", default="paper")
    p_plan.add_argument("--data", default=None, help="real data directory (paper profile)")
    p_plan.add_argument("--build", type=Path, default=ROOT / "build")
    p_plan.add_argument("--nproc", type=int, default=8, help="GPUs per node")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.profile, args.build, args.data, args.only)
    if args.command == "plan":
        return plan(args.profile, args.build, args.data, args.nproc)
    return html(args.build)


if __name__ == "__main__":
    raise SystemExit(main())
