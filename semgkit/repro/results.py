"""The book's result tables: every table a chapter prints is also written to
``build/results`` with its provenance (:mod:`semgkit.provenance`), and shown tidily:
readable numbers, CER cells with their intervals, the full table collapsed."""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import pandas as pd

from semgkit.provenance import device_name, git_revision, write_csv_md


def write_table(
    df: pd.DataFrame,
    name: str,
    build_dir: str | Path,
    *,
    profile: dict[str, Any],
    wall_time_s: float,
    title: str = "",
    notes: str = "",
    data_source: str = "",
) -> Path:
    """Write ``<build>/results/<name>.csv`` and ``.md``; returns the CSV path.

    The CSV carries the provenance as extra columns on every row so it stays
    self-describing; the Markdown file puts it in a header above the table.
    ``data_source`` names the data when it is not the profile's corpus (the pose chapter's).
    """
    meta = {
        "profile": profile.name,
        "data_source": data_source or profile.corpus.source,
        "device": device_name(),
        "wall_time_s": round(float(wall_time_s), 1),
        "seed": profile.seed,
        "git_revision": git_revision(),
    }
    csv_path = Path(build_dir) / "results" / f"{name}.csv"
    return write_csv_md(df, csv_path, meta, title or name, notes)


def tidy_number(value: Any) -> str:
    """A table cell as a reader wants it: ``–`` for missing, whole numbers without ``.0``
    (thousands separated), at most two decimals, two significant digits below 1."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if float(value).is_integer():
        return f"{int(value):,}" if abs(value) >= 10_000 else str(int(value))
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def tidy_html(df: pd.DataFrame) -> str:
    """HTML of ``df`` with every number through `tidy_number`; a plain 0..n-1 index is
    left out. The book registers it as the notebook's DataFrame display."""
    plain_index = isinstance(df.index, pd.RangeIndex) and df.index.start == 0
    shown = df.map(
        lambda v: tidy_number(v) if v is None or v is pd.NA or isinstance(v, numbers.Real) else v
    )
    return shown.to_html(index=not plain_index, border=0, na_rep="–")


def show_tables_tidily() -> None:
    """In IPython, display every DataFrame through `tidy_html` (JupyterLab and HTML alike)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, tidy_html)


CER_MEASURES = ("cross-user", "personalized")


def interval_cell(row: Any, measure: str) -> str:
    """``48.03 [45.1, 51.2]``: a row's ``<measure> CER %`` with its 95 % interval in one cell
    (the CER alone where the interval is unknown), numbers as `tidy_number` writes them;
    no-break spaces keep the cell on one line."""
    cer, lo, hi = (row[f"{measure} {c}"] for c in ("CER %", "CI95 lo", "CI95 hi"))
    if pd.isna(cer) or pd.isna(lo) or pd.isna(hi):
        return tidy_number(cer)
    return f"{tidy_number(cer)}\u00a0[{tidy_number(lo)},\u00a0{tidy_number(hi)}]"


def compact_cer_table(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The few columns a reader compares: ``keys``, parameters (measured and the paper's),
    and each CER with its interval in one cell beside the paper's number, where ``df`` has
    them. The full table keeps everything else (seeds, timings, decoders, protocol)."""
    out = df[[*keys, "parameters"]].copy()
    if "params (paper)" in df:
        out["params (paper)"] = df["params (paper)"]
    for measure in CER_MEASURES:
        if f"{measure} CER %" in df:
            cells = [interval_cell(row, measure) for _, row in df.iterrows()]
            out[f"{measure} CER % [95 % CI]"] = cells
            if f"{measure} CER % (paper)" in df:
                out[f"{measure} CER % (paper)"] = df[f"{measure} CER % (paper)"]
    return out


def compact_with_full(df: pd.DataFrame, keys: list[str], name: str) -> Any:
    """Display object: the compact table, then the whole of ``df`` in a collapsed section
    that scrolls inside itself, with a link to ``results/<name>.csv`` (from build/html)."""
    from IPython.display import HTML

    full = (
        f"<details><summary>The full table ({len(df.columns)} columns; also "
        f'<a href="../results/{name}.csv">results/{name}.csv</a>)</summary>'
        f'<div style="overflow-x: auto">{tidy_html(df)}</div></details>'
    )
    return HTML(tidy_html(compact_cer_table(df, keys)) + full)
