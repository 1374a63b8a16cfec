"""The book shows Tables 2 and 3 compact (the CERs with their intervals beside the
paper's), with the full table collapsed below; the results files keep every column."""

import math

import pandas as pd
import pytest

from semgkit.repro import results
from semgkit.repro.profiles import load_profile

# Table 2's columns as paper_tables.scaling writes them (decoder columns included)
TABLE2 = {
    "preset": ["lap-xs", "tds-laptop"],
    "family": ["transformer", "tds"],
    "parameters": [50_000, 120_000],
    "peak lr": [0.003, 0.001],
    "train s": [12.5, 30.1],
    "seeds": [2, 1],
    **{
        f"{m} {c}": v
        for m in ("cross-user", "personalized")
        for c, v in [
            ("CER %", [61.234, 48.0]),
            ("CI95 lo", [55.01, math.nan]),
            ("CI95 hi", [66.96, math.nan]),
            ("seed range", [1.5, math.nan]),
        ]
    },
    "cross-user CER % beam": [60.0, 47.0],
    "personalized CER % beam": [50.0, 40.0],
    "beam CPU s per sEMG min": [1.2, 0.8],
    "personalized users": [2, 2],
    "CER protocol": ["session", "session"],
    "params (paper)": ["", "5.3M"],
    "cross-user CER % (paper)": [None, 55.57],
    "personalized CER % (paper)": [None, 11.39],
}
COMPACT = [
    "preset",
    "parameters",
    "params (paper)",
    "cross-user CER % [95 % CI]",
    "cross-user CER % (paper)",
    "personalized CER % [95 % CI]",
    "personalized CER % (paper)",
]


def test_compact_table_has_the_promised_columns_and_cells():
    full = pd.DataFrame(TABLE2)
    compact = results.compact_cer_table(full, ["preset"])
    assert list(compact.columns) == COMPACT
    assert compact["cross-user CER % [95 % CI]"].tolist() == [
        "61.23\u00a0[55.01,\u00a066.96]",
        "48",
    ]
    assert compact["personalized CER % (paper)"].tolist()[1] == 11.39
    assert compact["parameters"].tolist() == [50_000, 120_000]


def test_compact_table_keeps_extra_keys_and_skips_missing_measures():
    table3 = pd.DataFrame(TABLE2).drop(columns=[c for c in TABLE2 if c.startswith("personalized")])
    table3.insert(0, "role", ["teacher", "student alone"])
    compact = results.compact_cer_table(table3, ["role", "preset"])
    assert list(compact.columns) == ["role", *COMPACT[:5]]


def test_display_leaves_the_full_table_and_its_csv_unchanged(tmp_path):
    full = pd.DataFrame(TABLE2)
    before = full.copy()
    html = results.compact_with_full(full, ["preset"], "table2_scaling").data
    pd.testing.assert_frame_equal(full, before)
    shown, collapsed = html.split("<details>")
    assert shown.count("<th>") == len(COMPACT)
    assert "table2_scaling.csv" in collapsed
    assert all(f"<th>{c}</th>" in collapsed for c in TABLE2)
    profile = load_profile("smoke")
    csv = results.write_table(full, "table2_scaling", tmp_path, profile=profile, wall_time_s=1.0)
    written = pd.read_csv(csv)
    assert list(written.columns)[: len(TABLE2)] == list(TABLE2)
    assert len(written.columns) == len(TABLE2) + 6  # provenance


@pytest.mark.parametrize("missing", ["cross-user CI95 lo", "parameters"])
def test_compact_table_names_a_missing_column(missing):
    with pytest.raises(KeyError, match=missing):
        results.compact_cer_table(pd.DataFrame(TABLE2).drop(columns=[missing]), ["preset"])
