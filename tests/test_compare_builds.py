"""tools/compare_builds.py: two builds of one computation compare identical whatever their
cache keys and paths; a changed weight, evaluation or table cell is reported."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

TOOL = Path(__file__).resolve().parent.parent / "tools" / "compare_builds.py"


def build(root: Path, key: str, weight: float = 1.0, cer: float = 50.0, train_s: float = 3.0):
    teacher = root / "cache" / "runs" / f"lap-xs-{key}aaaaaaaa"
    student = root / "cache" / "runs" / f"lap-student-{key}bbbbbbbb"
    for run, init in ((teacher, ""), (student, str(teacher))):
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"data_dir": str(root / "data"), "init": init}))
        torch.save({"model": {"w": torch.full((3,), weight)}}, run / "best.pt")
        (run / "metrics.jsonl").write_text(
            json.dumps({"step": 1, "loss": 2.0, "windows_per_s": train_s}) + "\n"
        )
        (run / "eval-generic-test.json").write_text(
            json.dumps({"overall": {"CER": cer}, "decoding": {"cpu_seconds": train_s}})
        )
        (run / "done.json").write_text(json.dumps({"train_seconds": train_s}))
    (root / "data").mkdir()
    (root / "data" / "session.hdf5").write_bytes(b"emg")
    (root / "results").mkdir()
    table = pd.DataFrame({"preset": ["lap-xs"], "CER": [cer], "train s": [train_s]})
    table.assign(git_revision=key).to_csv(root / "results" / "table2_scaling.csv", index=False)


def compare(a: Path, b: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, a, b], capture_output=True, text=True)


def test_same_computation_under_other_keys_and_paths_and_timings_is_identical(tmp_path):
    build(tmp_path / "a", "0123", train_s=3.0)
    build(tmp_path / "b", "4567", train_s=9.0)
    result = compare(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 0, result.stdout
    assert "runs: 2 matched" in result.stdout and result.stdout.strip().endswith("identical")


def test_a_changed_weight_evaluation_or_cell_is_reported(tmp_path):
    build(tmp_path / "a", "0123")
    build(tmp_path / "b", "4567", weight=1.0 + 1e-7, cer=50.5)
    result = compare(tmp_path / "a", tmp_path / "b")
    assert result.returncode == 1
    assert "best.pt differs" in result.stdout and "eval-generic-test.json differs" in result.stdout
    assert "table2_scaling.csv: column CER differs" in result.stdout
