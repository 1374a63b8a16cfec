"""The static HTML edition: a navigable book that loads in headless Chromium, offline,
with every figure drawn and its maths typeset by a local MathJax."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_compact_tables import COMPACT

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = {"profile", "data_source", "device", "wall_time_s", "seed", "git_revision"}
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


def snapshot(build: Path) -> dict[str, int]:
    """Every file under ``build`` outside html/, with its modification time."""
    return {
        str(p.relative_to(build)): p.stat().st_mtime_ns
        for p in build.rglob("*")
        if p.is_file() and p.relative_to(build).parts[0] != "html"
    }


@pytest.fixture(scope="module")
def html_book(smoke_book):
    """`make html` on the smoke book; it must execute and train nothing."""
    before = snapshot(smoke_book)
    bin_dir = Path(sys.executable).parent  # the test's interpreter, whichever venv it is
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "html"]
        + [f"BUILD={smoke_book}", f"BIN={bin_dir}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "book.py run" not in proc.stdout, "make html ran the book"
    assert snapshot(smoke_book) == before, "make html wrote outside build/html"
    return smoke_book / "html"


def render(page: Path, profile_dir: Path, *flags: str) -> tuple[str, list[str]]:
    """The DOM after scripts ran, and the console messages that report errors."""
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, *flags, f"--user-data-dir={profile_dir}", page.as_uri()],
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
        remote = re.findall(r"(?:src|href)=[\"']https?://|from ['\"]https?://", page.read_text())
        assert not remote, f"{page.name} loads from the network: {remote}"


def chapter_pages(html_book: Path) -> list[Path]:
    pages = sorted(html_book.glob("[0-9][0-9]_*.html"))
    assert len(pages) > 1
    return pages


def links(source: str) -> list[tuple[str | None, str | None]]:
    """(rel, href) of every <a> in an HTML page."""
    from html.parser import HTMLParser

    found = []

    class Links(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "a":
                found.append((dict(attrs).get("rel"), dict(attrs).get("href")))

    Links().feed(source)
    return found


def test_pages_link_chapter_to_chapter(html_book):
    pages = chapter_pages(html_book)
    for i, page in enumerate(pages):
        found = links(page.read_text())
        hrefs = {href for _, href in found}
        assert "index.html" in hrefs, f"{page.name}: no way back to the contents"
        missing = {p.name for p in pages} - hrefs  # the contents sidebar
        assert not missing, f"{page.name}: sidebar lacks {missing}"
        rel = {r: href for r, href in found if r}
        assert rel.get("prev") == (pages[i - 1].name if i > 0 else None), page.name
        assert rel.get("next") == (pages[i + 1].name if i + 1 < len(pages) else None), page.name


def test_pages_load_a_local_maths_renderer(html_book, tmp_path):
    for page in chapter_pages(html_book):
        src = re.search(r'<script src="(mathjax/MathJax\.js)[^"]*"', page.read_text())
        assert src, f"{page.name} does not load the local MathJax"
        assert (html_book / src.group(1)).is_file()
    distillation = next(html_book.glob("04_*.html"))
    assert "\\mathcal{L}" in distillation.read_text()  # chapter 4 has display maths
    dom, errors = render(distillation, tmp_path / "maths")
    assert not errors, errors
    assert 'class="MathJax_Display"' in dom, "MathJax did not typeset chapter 4's maths"


def test_reader_sees_no_parameters_cells_nor_bare_widget_code(html_book, smoke_book):
    import nbformat

    for page in chapter_pages(html_book):
        nb = nbformat.read(smoke_book / "book" / f"{page.stem}.ipynb", as_version=4)
        shown = [
            c
            for c in nb.cells
            if c.cell_type == "code"
            and not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))
        ]
        source = page.read_text()
        cells = source.count('class="jp-Cell jp-CodeCell')
        assert cells == len(shown), f"{page.name}: {cells} code cells shown for {len(shown)}"
        assert "VBox(children" not in source, f"{page.name}: a widget shown as its repr"
    playground = next(html_book.glob("06_*.html")).read_text()
    assert playground.count('<details class="book-hidden-code">') >= 2


def test_tables_are_formatted(html_book):
    # no missing-value markers, no "16.0", no more than two decimals from 1 up
    bad = re.compile(r"<td>(?:None|NaN|nan|<NA>|-?\d+\.0|-?[1-9][\d,]*\.\d{3,})</td>")
    tables = 0
    for page in chapter_pages(html_book):
        for table in re.findall(r'<table class="dataframe".*?</table>', page.read_text(), re.S):
            tables += 1
            assert not bad.findall(table), f"{page.name}: {bad.findall(table)[:5]}"
    assert tables >= 5
    intro = next(html_book.glob("00_*.html")).read_text()
    assert "<td><code>make html</code></td>" in intro, "the introduction's Markdown table"


# Moves each kernel-free slider of the playground to every step, the way plotly's slider
# does (Plotly.update with the step's arguments), and records the title after each move.
SLIDER_PROBE = """<script>
window.addEventListener("load", async () => {
  const report = [];
  for (const gd of document.querySelectorAll(".plotly-graph-div")) {
    const sliders = (gd.layout && gd.layout.sliders) || [];
    if (!sliders.length) continue;
    for (const step of sliders[0].steps) {
      await Plotly.update(gd, ...step.args);
      const shown = gd.querySelector(".gtitle");
      report.push({expected: step.args[1]["title.text"], shown: shown ? shown.textContent : null});
    }
  }
  const out = document.createElement("pre");
  out.id = "slider-report";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
});
</script>"""


def test_static_sliders_keep_the_title(html_book, tmp_path):
    page = next(html_book.glob("06_*.html"))
    probe = html_book / "probe_playground.html"
    probe.write_text(page.read_text().replace("</body>", SLIDER_PROBE + "</body>"))
    try:
        dom, errors = render(probe, tmp_path / "slider")
    finally:
        probe.unlink()
    assert not errors, errors
    report = json.loads(re.search(r'<pre id="slider-report">(.*?)</pre>', dom, re.S).group(1))
    assert len(report) >= 2, "the playground has no kernel-free slider"
    for move in report:
        assert move["expected"] and move["shown"] == move["expected"], move


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


# Reports every results table shown outside a collapsed <details>: its width against its
# output box and the page's main column, and whether the page itself scrolls sideways.
WIDTH_PROBE = """<script>
window.addEventListener("load", () => {
  const main = document.querySelector("main") || document.body;
  const room = main.getBoundingClientRect().width;
  const tables = [...document.querySelectorAll("table.dataframe")]
    .filter((t) => !t.closest("details"))
    .map((t) => ({columns: t.querySelectorAll("thead th").length, width: t.scrollWidth,
                  box: t.parentElement.clientWidth}));
  const out = document.createElement("pre");
  out.id = "width-report";
  out.textContent = JSON.stringify({room, tables, page: document.documentElement.scrollWidth,
                                    view: window.innerWidth});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.parametrize(
    "chapter, name, compact",
    [
        ("03_", "table2_scaling", ["preset"]),
        ("04_", "table3_distillation", ["role", "preset"]),
    ],
)
def test_wide_tables_show_compact_with_the_full_table_collapsed(
    html_book, smoke_book, tmp_path, chapter, name, compact
):
    import html as html_lib

    import pandas as pd

    page = next(html_book.glob(f"{chapter}*.html"))
    source = html_lib.unescape(page.read_text())
    shown = re.search(
        r'(<table class="dataframe".*?</table>)\s*<details><summary>The full table'
        rf'.*?"\.\./results/{name}\.csv".*?(<table class="dataframe".*?</table>)',
        source,
        re.S,
    )
    assert shown, f"{page.name}: no compact {name} followed by its collapsed full table"
    short, full = (re.findall(r"<th>(.*?)</th>", t) for t in shown.groups())
    assert short == [*compact, *COMPACT[1:]]  # COMPACT[0] is "preset"
    written = pd.read_csv(smoke_book / "results" / f"{name}.csv").columns
    assert full == [c for c in written if c not in PROVENANCE], "the full table is the CSV's"
    probe = html_book / f"probe_{page.name}"
    probe.write_text(page.read_text().replace("</body>", WIDTH_PROBE + "</body>"))
    try:
        dom, errors = render(probe, tmp_path / "width", "--window-size=1400,1000")
    finally:
        probe.unlink()
    report = json.loads(re.search(r'<pre id="width-report">(.*?)</pre>', dom, re.S).group(1))
    assert report["page"] <= report["view"], f"{page.name} scrolls sideways: {report}"
    too_wide = [t for t in report["tables"] if t["width"] > min(t["box"], report["room"])]
    assert not too_wide, f"{page.name}: tables wider than the page gives them: {report}"
