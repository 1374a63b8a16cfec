"""Checkpoints cannot run code (semgkit.checkpoint): a crafted file is refused through every
command that reads one, with the command that converts a trusted one; files that are not
checkpoints, or checkpoints of another model, are one-line errors naming the file. Each
case is a line of docs/RELIABILITY.md."""

# ruff: noqa: F811 (the corpus and one_thread fixtures come from tests/test_train.py)

import io
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from semgkit import cli, models
from semgkit.checkpoint import UnsafeCheckpoint, load_checkpoint
from semgkit.train import fit
from tests._argv import distill_argv
from tests.test_runs import one_line_error, snapshot
from tests.test_train import corpus, one_thread, tiny  # noqa: F401 (fixtures)


class Payload:
    """Unpickling this runs ``touch MARKER``: what a crafted checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory) -> Path:
    return fit(tiny(corpus), tmp_path_factory.mktemp("ckpt") / "run", progress=False)


def craft(path: Path, marker: Path) -> None:
    """Replace checkpoint ``path`` by the same contents plus a payload that writes ``marker``."""
    state = torch.load(path, weights_only=True)
    torch.save({**state, "note": Payload(marker)}, path)


def test_the_crafted_file_is_live_when_loaded_unsafely(finished, tmp_path):
    # the control: the payload does run under weights_only=False, so the tests below
    # prove the loader, not a harmless file
    path, marker = tmp_path / "best.pt", tmp_path / "ran"
    shutil.copy(finished / "best.pt", path)
    craft(path, marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "entry", ["eval --run", "distill --teacher", "train --init", "train --resume"]
)
def test_a_crafted_checkpoint_runs_no_code_through_any_command(
    corpus, finished, tmp_path, capsys, entry
):
    run, marker, out = shutil.copytree(finished, tmp_path / "run"), tmp_path / "ran", tmp_path / "o"
    which = "last.pt" if entry == "train --resume" else "best.pt"
    craft(run / which, marker)
    if entry == "eval --run":
        argv = ["eval", "--data", str(corpus), "--run", str(run)]
    elif entry == "distill --teacher":
        argv = distill_argv(corpus, run, out)
    elif entry == "train --init":
        recipe = tmp_path / "recipe.json"
        recipe.write_text(json.dumps(asdict(tiny(corpus, init=str(run)))))
        argv = ["train", "--config", str(recipe), "--out", str(out)]
    else:
        argv = ["train", "--config", str(run / "config.json"), "--out", str(run), "--resume"]
    before = snapshot(run)
    line = one_line_error(
        capsys,
        cli.main(argv),
        f"{run / which}: refused",
        f"semgkit convert-checkpoint {run / which}",
    )
    assert "can run code" in line
    assert not marker.exists()
    assert snapshot(run) == before
    assert not out.exists()


def test_convert_rewrites_a_trusted_checkpoint_that_then_loads_safely(finished, tmp_path, capsys):
    run = shutil.copytree(finished, tmp_path / "run")
    state = torch.load(run / "best.pt", weights_only=True)
    old = {
        **state,
        "best_cer": np.float64(41.5),
        "model_config": models.resolve(state["preset"]),
        "extra": np.arange(3),
    }
    torch.save(old, run / "best.pt")  # what another tool or an old version may have written
    with pytest.raises(UnsafeCheckpoint, match="convert-checkpoint"):
        load_checkpoint(run / "best.pt")
    assert cli.main(["convert-checkpoint", str(run / "best.pt")]) == 0
    assert capsys.readouterr().out.strip() == f"{run / 'best.pt'}: converted; it loads safely now"
    new = load_checkpoint(run / "best.pt")
    assert new["best_cer"] == 41.5 and isinstance(new["best_cer"], float)
    assert models.resolve(new["model_config"]) == models.resolve(state["preset"])
    assert torch.equal(new["extra"], torch.arange(3))
    assert all(torch.equal(new["model"][k], state["model"][k]) for k in state["model"])
    assert cli.main(["convert-checkpoint", str(run / "best.pt")]) == 0
    assert capsys.readouterr().out.strip() == f"{run / 'best.pt'}: already safe"


def test_convert_refuses_what_has_no_plain_form(finished, tmp_path, capsys):
    path = tmp_path / "best.pt"
    state = torch.load(finished / "best.pt", weights_only=True)
    torch.save({**state, "loader": io.StringIO("x")}, path)
    before = path.read_bytes()
    one_line_error(
        capsys,
        cli.main(["convert-checkpoint", str(path)]),
        f"{path}: cannot be converted: checkpoint['loader'] is a _io.StringIO",
    )
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary left


# --- files that are not checkpoints, or not this run's ---------------------------------------


def test_a_last_pt_that_is_not_a_checkpoint_is_a_one_line_error(corpus, finished, tmp_path, capsys):
    run = shutil.copytree(finished, tmp_path / "run")
    argv = ["train", "--config", str(run / "config.json"), "--out", str(run), "--resume"]
    torch.save([1, 2, 3], run / "last.pt")
    one_line_error(capsys, cli.main(argv), f"{run / 'last.pt'}: not a semgkit checkpoint (a list")
    (run / "last.pt").write_bytes(b"not a checkpoint\n" * 20)
    one_line_error(capsys, cli.main(argv), f"{run / 'last.pt'}: damaged or truncated")
    state = torch.load(finished / "last.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "optimizer"}, run / "last.pt")
    one_line_error(capsys, cli.main(argv), "not a semgkit checkpoint (a dict without optimizer)")


def test_resume_from_a_last_pt_of_another_preset_is_a_one_line_error(finished, tmp_path, capsys):
    run = shutil.copytree(finished, tmp_path / "run")
    state = torch.load(run / "last.pt", weights_only=True)
    other = models.build("lap-xxs")
    torch.save(
        {
            **state,
            "model": other.state_dict(),
            "preset": "lap-xxs",
            "model_config": models.config_dict(models.resolve("lap-xxs")),
        },
        run / "last.pt",
    )
    before = snapshot(run)
    argv = ["train", "--config", str(run / "config.json"), "--out", str(run), "--resume"]
    one_line_error(
        capsys,
        cli.main(argv),
        f"{run / 'last.pt'}: checkpoint is a 'lap-xxs' model, not 'lap-student'",
    )
    # the same preset name and config, weights of another shape: still named, no traceback
    torch.save({**state, "model": other.state_dict()}, run / "last.pt")
    one_line_error(capsys, cli.main(argv), f"{run / 'last.pt'}: weights do not fit the model")
    assert snapshot(run).keys() == before.keys()


def test_a_config_with_an_unknown_model_field_is_a_one_line_error(corpus, tmp_path, capsys):
    recipe, out = tmp_path / "recipe.json", tmp_path / "run"
    recipe.write_text(json.dumps(asdict(tiny(corpus, model={"layerz": 3}))))
    argv = ["train", "--config", str(recipe), "--out", str(out)]
    one_line_error(capsys, cli.main(argv), "model field(s) ['layerz'] unknown")
    assert not out.exists()


# --- eval on a run that never finished ---------------------------------------------------------


def test_eval_of_an_unfinished_run_warns_naming_the_step(corpus, finished, tmp_path, capsys):
    def crash(step: int) -> None:
        if step == 3:
            raise RuntimeError("killed")

    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        fit(tiny(corpus, val_every=2, val_windows=4), out, progress=False, on_step=crash)
    assert (out / "best.pt").is_file() and not (out / "done.json").exists()
    assert cli.main(["eval", "--data", str(corpus), "--run", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"semgkit eval: warning: {out} is not a finished run (no done.json): best.pt is from "
        "step 2 of 6; resume it with --resume to finish, or expect the error rates of a model "
        "that has not finished training"
    )
    assert "CER" in json.loads(captured.out)["overall"]
    assert cli.main(["eval", "--data", str(corpus), "--run", str(finished)]) == 0
    assert capsys.readouterr().err == ""  # a finished run: not a word
