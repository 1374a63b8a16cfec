"""Names a user supplies (a profile's, a preset's, a session's, a prompt's text) reach the
book's pages as text, never as markup: a profile file is something one shares, and the
static edition is opened in a browser. The outputs the chapters display are built here by
the book's own helpers with hostile names, rendered by the book's HTML exporter, and the
page is searched for live markup. A line of docs/RELIABILITY.md."""

import importlib.util
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import plotly.graph_objects as go
from IPython.core.formatters import DisplayFormatter

from semgkit.repro import claims, results, teach
from semgkit.repro.claims import Claim

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = [
    "<script>window.PWNED_1 = 1</script>",
    '<img src=x onerror="window.PWNED_2 = 1">',
    "[click](javascript:window.PWNED_3)",
    '"><svg onload="window.PWNED_4 = 1">',
    "</p><iframe srcdoc='PWNED_5'></iframe>",
]
NAME = " ".join(HOSTILE)  # every payload in one name


def book_module():
    spec = importlib.util.spec_from_file_location("book_tool", ROOT / "tools" / "book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Markup(HTMLParser):
    """Attributes, script bodies and text of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attrs: list[tuple[str, str, str]] = []
        self.scripts: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag):
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def outputs_with_hostile_names() -> list[dict]:
    """What chapters 1-6 display, with every user-supplied name hostile."""
    formatter = DisplayFormatter()

    def display(obj) -> dict:
        data, _ = formatter.format(obj)
        return nbformat.v4.new_output("display_data", data=data)

    table = pd.DataFrame({"preset": [NAME], "session": [NAME], "CER %": [12.5]})
    fig = go.Figure(go.Scatter(x=[1], y=[2], text=[NAME], name=NAME, mode="markers+text"))
    fig.update_layout(title=f"The corpus of profile {NAME}", xaxis_title=NAME)
    return [
        display(
            claims.box(
                f"What to expect (this run: profile {NAME})",
                [
                    Claim(f"The TDS-ConvNet beats {NAME}.", "holds", f"{NAME} 12 -> 10"),
                    Claim(NAME, None, NAME),
                ],
            )
        ),
        display(claims.box(f"Paper ({NAME})", [Claim(NAME, True, NAME)])),
        nbformat.v4.new_output("display_data", data={"text/html": results.tidy_html(table)}),
        display(teach.edits_html(NAME + " typed", NAME)),  # a prompt's text, decoded
        nbformat.v4.new_output(
            "display_data", data={"application/vnd.plotly.v1+json": json.loads(fig.to_json())}
        ),
        nbformat.v4.new_output("stream", name="stdout", text=f"profile {NAME}\n"),
    ]


def test_hostile_names_reach_the_html_book_as_text_only(tmp_path):
    book = book_module()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Hostile names"),
        nbformat.v4.new_code_cell("show()", outputs=outputs_with_hostile_names()),
    ]
    assert book._static_outputs(nb) == 1
    page = {"href": "00_x.html", "title": "Hostile names"}
    nav = {"pages": [page], "current": 0, "prev": None, "next": None}
    body, _ = book._exporter().from_notebook_node(
        nb, resources={"metadata": {"name": page["title"]}, "book": nav}
    )
    markup = Markup()
    markup.feed(body)
    live = [(t, k, v) for t, k, v in markup.attrs if "PWNED" in v or k.startswith("on")]
    assert not live, live  # no event handler, link, source or frame carries a payload
    assert "iframe" not in markup.tags and "svg" not in markup.tags
    for script in markup.scripts:  # only a figure's data may hold one, as a JSON string
        assert "PWNED" not in script or "Plotly.newPlot" in script, script[:300]
        assert not re.search(r"<[^<>]*PWNED", script), script[:300]  # no raw tag in it
    shown = "".join(markup.text)
    for payload in HOSTILE:  # each is shown to the reader, as typed
        assert payload in shown, payload
