"""Runs that could never finish, configs from other semgkit versions, and results that
were not JSON: a run must be refused before its first step if its evaluation would fail,
``--resume`` must accept what differs only by a default, and ``semgkit eval`` must print
valid JSON."""

# ruff: noqa: F811 (the corpus and one_thread fixtures come from tests/test_train.py)

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
import yaml

from semgkit import cli
from semgkit.train import fit
from tests._argv import train_argv
from tests.test_train import corpus, one_thread, tiny  # noqa: F401 (fixtures)


class Stop(Exception):
    pass


def stop_at(step: int):
    def on_step(done: int) -> None:
        if done == step:
            raise Stop

    return on_step


def one_line(capsys, rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("semgkit ") and all(n in line for n in needles), err
    return line


def small_corpus(corpus: Path, root: Path, split: dict[str, list[str]]) -> Path:
    """A corpus of copies of ``corpus``'s first sessions named s0, s1, ...; ``split``
    lists them by part."""
    root.mkdir()
    sessions = sorted(corpus.glob("*.hdf5"))
    names = sorted({s for part in split.values() for s in part})
    for i, name in enumerate(names):
        shutil.copy(sessions[i], root / f"{name}.hdf5")
    (root / "splits").mkdir()
    dataset = {part: [{"session": s} for s in names] for part, names in split.items()}
    (root / "splits" / "generic.yaml").write_text(yaml.safe_dump({"dataset": dataset}))
    return root


def test_a_window_evaluation_cannot_score_is_refused_before_the_first_step(
    corpus, tmp_path, capsys
):
    out = tmp_path / "run"
    rc = cli.main(train_argv(corpus, out, *"--window-s 1.001 --steps 2 --batch-size 4".split()))
    line = one_line(capsys, rc, "--window-s 1.001", "2002 samples", "validation")
    assert "choose a multiple of" in line
    assert not out.exists()  # refused before the run directory was made


def test_a_split_whose_val_sessions_have_no_ground_truth_is_refused_first(corpus, tmp_path):
    data = small_corpus(corpus, tmp_path / "c", {"train": ["s0"], "val": ["s1"]})
    with h5py.File(data / "s1.hdf5", "r+") as f:
        f["emg2qwerty"].attrs["condition"] = "off_keyboard"
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="skipped, condition 'off_keyboard'"):
        with pytest.raises(ValueError, match="none of its 1 val session.s. has typed ground"):
            fit(tiny(data), out, progress=False)
    assert not out.exists()


@pytest.fixture
def interrupted(corpus, tmp_path) -> Path:
    """A run stopped after its checkpoint at step 3 of 6."""
    out = tmp_path / "run"
    with pytest.raises(Stop):
        fit(tiny(corpus, checkpoint_every=3), out, progress=False, on_step=stop_at(3))
    assert (out / "last.pt").is_file() and not (out / "done.json").exists()
    return out


def edit_config(run: Path, edit) -> None:
    saved = json.loads((run / "config.json").read_text())
    edit(saved)
    (run / "config.json").write_text(json.dumps(saved))


def test_resume_accepts_a_config_lacking_a_field_at_its_default(corpus, interrupted, capsys):
    edit_config(interrupted, lambda c: c.pop("teacher_cache"))  # as an older semgkit wrote it
    fit(tiny(corpus, checkpoint_every=3), interrupted, resume=True, progress=False)
    assert (interrupted / "done.json").is_file()
    err = capsys.readouterr().err
    assert "was written by another semgkit version, without teacher_cache=False" in err
    assert "resuming with these defaults" in err


def test_resume_refuses_a_field_this_version_does_not_know(corpus, interrupted):
    edit_config(interrupted, lambda c: c.update(label_smoothing=0.1))  # a newer semgkit's
    before = (interrupted / "last.pt").read_bytes()
    with pytest.raises(ValueError, match=r"label_smoothing: 0\.1 -> \(not a field of this"):
        fit(tiny(corpus, checkpoint_every=3), interrupted, resume=True, progress=False)
    assert (interrupted / "last.pt").read_bytes() == before


def test_resume_refuses_a_lacking_field_set_to_another_value(corpus, interrupted):
    edit_config(interrupted, lambda c: c.pop("alpha"))
    with pytest.raises(ValueError, match=r"alpha: \(absent, i\.e\. the default 0\.5\) -> 0\.7"):
        fit(tiny(corpus, checkpoint_every=3, alpha=0.7), interrupted, resume=True, progress=False)


def test_a_config_json_that_is_not_json_is_named(corpus, interrupted, capsys):
    (interrupted / "config.json").write_text("{torn")
    rc = cli.main(train_argv(corpus, interrupted, "--resume", "--steps", "6"))
    one_line(capsys, rc, f"{interrupted / 'config.json'}: not a readable run config")


def test_eval_of_a_split_without_text_prints_null_not_nan(corpus, tmp_path, capsys):
    run = fit(tiny(corpus, steps=1), tmp_path / "run", progress=False)
    data = small_corpus(corpus, tmp_path / "c", {"train": ["s0"], "test": ["s1"]})
    with h5py.File(data / "s1.hdf5", "r+") as f:
        f["emg2qwerty"].attrs["keystrokes"] = "[]"  # typed, but nothing to score
    capsys.readouterr()
    assert cli.main(["eval", "--data", str(data), "--run", str(run)]) == 0
    out = capsys.readouterr().out

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    result = json.loads(out, parse_constant=refuse)
    assert result["overall"]["CER"] is None and result["overall"]["chars"] == 0
