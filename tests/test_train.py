"""Behaviour of the training engine (semgkit.train) on a tiny synthetic corpus.

Runs are a few steps of batch 4 on 1 s windows, single-threaded: they check the
machinery (schedule, run directory, determinism, resume after SIGKILL, DDP, errors,
evaluation, personalization, CLI), not accuracy, except where a test says otherwise.
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semgkit import cli, synth, train
from semgkit.data import Session, load_split, typed_sessions
from semgkit.evaluate import evaluate
from semgkit.metrics import error_rates
from semgkit.optim import lr_lambda
from semgkit.runs import TrainConfig, load_run, run_config
from semgkit.stitch import stitched_log_probs
from semgkit.train import fit, personalize
from semgkit.windows import WindowedDataset
from tests._argv import TORCHRUN, train_argv

WORKER = Path(__file__).resolve().parent / "_train_worker.py"
RATE_KEYS = {"CER", "IER", "DER", "SER"}
COUNT_KEYS = {"insertions", "deletions", "substitutions", "chars"}
# No batch coupling (BatchNorm) and no randomness (dropout, time masks, augmentation):
# the loss of a batch is then the mean of its items' losses, however it is split.
DECOUPLED = {"model": {"feat_norm": "group", "dropout": 0.0, "time_mask_p": 0.0}, "augment": False}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("corpus") / "smoke", "smoke", progress=False)


def tiny(corpus: Path, **overrides) -> TrainConfig:
    base = dict(
        data_dir=str(corpus),
        preset="lap-student",
        steps=6,
        batch_size=4,
        window_s=1.0,
        past_s=0.2,
        future_s=0.05,
        num_threads=1,
    )
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    """A finished tiny run, shared by tests that only read it."""
    return fit(tiny(corpus), tmp_path_factory.mktemp("runs") / "tiny", progress=False)


def checkpoint(run_dir: Path, which: str = "last") -> dict:
    return torch.load(Path(run_dir) / f"{which}.pt", map_location="cpu", weights_only=False)


def assert_same_weights(a: Path, b: Path, which: str = "last") -> None:
    wa, wb = checkpoint(a, which)["model"], checkpoint(b, which)["model"]
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def log_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the timing column (which differs between identical runs)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "windows_per_s"} for row in rows]


def assert_close_training(a: Path, b: Path, corpus: Path, atol: float = 1e-5) -> None:
    """Two runs that computed the same updates up to float summation order.

    ``featurizer.convs.0.bias`` feeds a per-channel GroupNorm, which subtracts it again:
    its true gradient is zero, so AdamW's m / sqrt(v) turns rounding noise into steps
    of about lr. It is compared through what it cannot change, the model's outputs."""
    wa, wb = checkpoint(a)["model"], checkpoint(b)["model"]
    for name in wa:
        if name != "featurizer.convs.0.bias":
            torch.testing.assert_close(wa[name], wb[name], atol=atol, rtol=0, msg=name)
    (ma, config), (mb, _) = load_run(a, "last"), load_run(b, "last")
    val = WindowedDataset(
        load_split(corpus, "generic").val,
        config.samples(config.window_s),
        config.samples(config.past_s),
        config.samples(config.future_s),
    )
    emg = torch.stack([val[i][0] for i in range(4)])
    with torch.no_grad():
        torch.testing.assert_close(ma(emg), mb(emg), atol=1e-4, rtol=0)


# --- learning-rate schedule ------------------------------------------------------------


def test_lr_schedule_is_linear_warmup_then_cosine_to_zero():
    f = lr_lambda(TrainConfig(data_dir=".", steps=100, warmup_frac=0.1))
    assert f(0) == pytest.approx(0.1)  # first step: 1/warmup of the peak
    assert f(4) == pytest.approx(0.5)
    assert f(9) == pytest.approx(1.0)  # last warmup step reaches the peak
    assert f(10) == pytest.approx(1.0)  # cosine starts at the peak
    assert f(55) == pytest.approx(0.5)  # halfway through the decay
    assert f(100) == pytest.approx(0.0)
    assert f(130) == pytest.approx(0.0)  # past the end it stays at zero
    decay = [f(s) for s in range(10, 101)]
    assert (np.diff(decay) < 0).all()


def test_lr_schedule_has_at_least_one_warmup_step():
    f = lr_lambda(TrainConfig(data_dir=".", steps=10, warmup_frac=0.0))
    assert f(0) == pytest.approx(1.0)
    assert f(5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 9)))


# --- fit: run directory, metrics log, determinism ----------------------------------------


def test_fit_writes_a_complete_run_directory(corpus, tmp_path):
    config = tiny(corpus, warmup_frac=0.5)
    out = fit(config, tmp_path / "run", progress=False)
    assert out == tmp_path / "run"
    # nothing else (the lock file aside): no temporary files left behind by the atomic writes
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock",
        "best.pt",
        "config.json",
        "done.json",
        "last.pt",
        "metrics.jsonl",
    ]
    assert json.loads((out / "config.json").read_text()) == asdict(config)
    rows = log_rows(out)
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    # each row carries the rate its step used: warmup 1/3, 2/3, 1, then the cosine
    f = lr_lambda(config)
    assert [r["lr"] for r in steps] == pytest.approx([config.lr * f(s) for s in range(6)])
    assert steps[2]["lr"] == pytest.approx(config.lr)
    assert [r["step"] for r in rows if "val_cer" in r] == [6]
    last = checkpoint(out)
    assert last["step"] == 6 and last["preset"] == "lap-student"
    assert {"model", "optimizer", "scheduler", "rng"} <= set(last)
    model, loaded = load_run(out)
    assert loaded == config and not model.training


@pytest.mark.outcome
def test_same_config_and_seed_give_identical_weights(corpus, tmp_path):
    config = tiny(corpus, steps=4)
    a = fit(config, tmp_path / "a", progress=False)
    b = fit(config, tmp_path / "b", progress=False)
    c = fit(tiny(corpus, steps=4, seed=1), tmp_path / "c", progress=False)
    assert_same_weights(a, b)
    assert_same_weights(a, b, "best")
    assert log_rows(a) == log_rows(b)
    wa, wc = checkpoint(a)["model"], checkpoint(c)["model"]
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)  # the seed matters


@pytest.mark.outcome
def test_gradient_accumulation_matches_the_whole_batch(corpus, tmp_path):
    whole = fit(tiny(corpus, steps=3, **DECOUPLED), tmp_path / "whole", progress=False)
    split = fit(tiny(corpus, steps=3, accumulate=2, **DECOUPLED), tmp_path / "acc", progress=False)
    assert_close_training(whole, split, corpus)


def test_fit_refuses_a_nonempty_run_directory(run):
    before = (run / "last.pt").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="not empty.*--resume"):
        fit(run_config(run), run, progress=False)
    assert (run / "last.pt").stat().st_mtime_ns == before


# --- resume after SIGKILL --------------------------------------------------------------


@pytest.mark.outcome
@pytest.mark.parametrize("kill_after, workers", [(3, 0), (5, 2)])
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(corpus, tmp_path, kill_after, workers):
    # the default model and recipe: dropout, time masks and augmentation all draw
    # random numbers, so the RNG state and data position must be restored exactly; the
    # interrupted run reads through loader workers, the uninterrupted one in-process
    config = tiny(corpus, steps=8, checkpoint_every=3)
    a = fit(config, tmp_path / "a", progress=False)
    b = tmp_path / "b"
    config = replace(config, num_workers=workers)
    (tmp_path / "config.json").write_text(json.dumps(asdict(config)))
    worker = [sys.executable, str(WORKER), str(tmp_path / "config.json"), str(b)]
    proc = subprocess.run(
        [*worker, "--kill-after", str(kill_after)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert checkpoint(b)["step"] == 3  # the last checkpoint before the kill
    assert not (b / "best.pt").exists()
    with (b / "metrics.jsonl").open("a") as log:  # as if the kill tore a line mid-write
        log.write('{"step": 4, "loss": 1.0, "lr": 0.0}\n{"step": 5, "lo')

    fit(config, b, resume=True, progress=False)
    assert_same_weights(a, b)
    assert_same_weights(a, b, "best")
    assert log_rows(b) == log_rows(a)  # every step logged once, no torn line
    ra, rb = evaluate(a, corpus, "generic"), evaluate(b, corpus, "generic")
    assert ra.overall == rb.overall
    pd.testing.assert_frame_equal(ra.predictions, rb.predictions)


# --- DistributedDataParallel -------------------------------------------------------------


@pytest.mark.outcome
def test_two_gloo_processes_match_one_process_on_the_same_global_batch(corpus, tmp_path):
    config = tiny(corpus, steps=4, batch_size=4, **DECOUPLED)
    one = fit(config, tmp_path / "one", progress=False)
    config = replace(config, num_workers=1)  # each process reads through its own worker
    (tmp_path / "config.json").write_text(json.dumps(asdict(config)))
    two = tmp_path / "two"
    proc = subprocess.run(
        [*TORCHRUN, str(WORKER), str(tmp_path / "config.json"), str(two)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert checkpoint(two)["step"] == 4
    assert json.loads((two / "config.json").read_text()) == asdict(config)
    assert_close_training(one, two, corpus)
    # one metrics row per step (rank 0 logs), not one per process
    assert [r["step"] for r in log_rows(two) if "loss" in r] == [1, 2, 3, 4]


# --- NaN / inf loss ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    corpus, tmp_path, monkeypatch, bad
):
    config = tiny(corpus, steps=6, checkpoint_every=2)
    good = tmp_path / "good-step2.pt"
    fit(
        config,
        tmp_path / "clean",
        progress=False,
        on_step=lambda s: s == 2 and shutil.copy(tmp_path / "clean" / "last.pt", good),
    )
    calls = []
    ctc = train.ctc_objective

    def poisoned(model, batch):
        loss, stats = ctc(model, batch)
        calls.append(1)
        return (loss * bad if len(calls) == 4 else loss), stats

    monkeypatch.setattr(train, "ctc_objective", poisoned)
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"at step 4\b.*last\.pt"):
        fit(config, out, progress=False)
    kept, ref = checkpoint(out), torch.load(good, weights_only=False)
    assert kept["step"] == 2
    for name, value in ref["model"].items():
        assert torch.equal(kept["model"][name], value), name
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


# --- a session file that goes away under a run --------------------------------------------


@pytest.mark.parametrize("damage, workers", [("delete", 0), ("truncate", 2)])
def test_a_session_file_lost_mid_run_stops_it_and_the_checkpoint_resumes(
    corpus, tmp_path, damage, workers
):
    data = shutil.copytree(corpus, tmp_path / "corpus")
    sessions = load_split(data, "generic").train
    saved = {p: p.read_bytes() for p in sessions}

    def lose_files(step: int) -> None:
        if step == 2:
            for p in sessions:
                p.unlink() if damage == "delete" else os.truncate(p, len(saved[p]) // 2)

    out = tmp_path / "run"
    config = tiny(data, steps=16, checkpoint_every=2, num_workers=workers)
    error = FileNotFoundError if damage == "delete" else ValueError
    # workers may have read a few batches ahead of the step that lost the files
    with pytest.raises(error, match=rf"^{re.escape(str(data))}/.*\.hdf5: session file .*stopped"):
        fit(config, out, progress=False, on_step=lose_files)
    kept = checkpoint(out)["step"]
    assert kept >= 2 and kept % 2 == 0 and not (out / "done.json").exists()
    for p, raw in saved.items():  # the files come back; the run resumes to the end
        p.write_bytes(raw)
    fit(config, out, resume=True, progress=False)
    full = fit(tiny(corpus, steps=16), tmp_path / "full", progress=False)
    assert_same_weights(full, out)


# --- clear errors before any work ----------------------------------------------------------


def test_missing_data_directory(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        fit(tiny(tmp_path / "nowhere"), out, progress=False)
    assert not out.exists()


def test_missing_split(corpus, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="'nosuch'.*generic"):
        fit(tiny(corpus, split="nosuch"), out, progress=False)
    assert not out.exists()


def test_unknown_preset(corpus, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="unknown preset 'lap-huge'"):
        fit(tiny(corpus, preset="lap-huge"), out, progress=False)
    assert not out.exists()


def test_resume_with_a_different_config(run):
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != ".lock"}
    changed = tiny(run_config(run).data_dir, lr=1e-3)
    with pytest.raises(ValueError, match="config.json.*different config"):
        fit(changed, run, resume=True, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir() if p.name != ".lock"} == before


def test_resume_without_a_checkpoint_starts_over(corpus, tmp_path):
    out = fit(tiny(corpus, steps=2), tmp_path / "empty", resume=True, progress=False)
    assert checkpoint(out)["step"] == 2


def test_init_from_a_run_of_another_preset(corpus, run, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="best.pt.*'lap-student' model, not 'lap-xxs'"):
        fit(tiny(corpus, preset="lap-xxs", init=str(run)), out, progress=False)
    assert not out.exists()


def test_init_from_a_run_with_another_charset(corpus, run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run, other)
    state = checkpoint(other, "best")
    state["charset"] = state["charset"][::-1]
    torch.save(state, other / "best.pt")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="another character set"):
        fit(tiny(corpus, init=str(other)), out, progress=False)
    assert not out.exists()


def test_init_from_a_directory_that_is_not_a_run(corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="--init.*not a run directory"):
        fit(tiny(corpus, init=str(tmp_path)), tmp_path / "run", progress=False)


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_reports_pooled_and_per_user_rates(corpus, run):
    result = evaluate(run, corpus, "generic")
    overall = result.overall
    assert set(overall) == RATE_KEYS | COUNT_KEYS | {"sessions"}
    split = load_split(corpus, "generic")
    assert overall["sessions"] == len(split.test) == 2
    edits = overall["insertions"] + overall["deletions"] + overall["substitutions"]
    assert overall["CER"] == pytest.approx(100 * edits / overall["chars"])
    assert overall["CER"] == pytest.approx(overall["IER"] + overall["DER"] + overall["SER"])

    table = result.predictions
    assert list(table.columns) == ["session", "user", "prediction", "target"]
    assert sorted(table["user"]) == split.test_users
    rates = error_rates(table["prediction"].tolist(), table["target"].tolist())
    assert rates == pytest.approx({k: overall[k] for k in RATE_KEYS})
    # the test part is scored on whole sessions: the target is every key, tail included
    assert json.loads(result.to_json())["protocol"] == "session"
    for path, row in zip(split.test, table.itertuples(), strict=True):
        session = Session(path)
        assert row.session == session.session_name
        assert row.target == session.key_events()[1]
        assert len(row.target) > 0

    users = result.per_user
    assert isinstance(users, pd.DataFrame)
    assert users["user"].tolist() == split.test_users
    assert RATE_KEYS | COUNT_KEYS <= set(users.columns)
    for key in COUNT_KEYS:
        assert users[key].sum() == overall[key]

    parsed = json.loads(result.to_json())
    assert parsed["overall"] == pytest.approx(overall)
    assert sorted(parsed["per_user"]) == split.test_users
    first = split.test_users[0]
    assert parsed["per_user"][first]["CER"] == pytest.approx(users.iloc[0]["CER"])


def test_evaluate_a_bare_model_with_its_config(corpus, run):
    model, config = load_run(run)
    bare = evaluate(model, corpus, "generic", "val", config=config)
    assert bare.overall == evaluate(run, corpus, "generic", "val").overall
    assert bare.overall["sessions"] == len(load_split(corpus, "generic").val) == 4
    assert bare.protocol == "window"  # emg2qwerty validates on windows


def test_session_evaluation_holds_one_session_in_flight(corpus, run, monkeypatch):
    """Whole-session scoring reads a session's later windows only once the sessions before
    it were handed over (give or take the batch that straddles two sessions): memory holds
    about one session's frames, plus one first window per session."""
    model, config = load_run(run)
    sessions = typed_sessions(load_split(corpus, "generic").test)
    read = []
    window = Session.window
    monkeypatch.setattr(
        Session, "window", lambda s, lo, hi: read.append((s.path, lo)) or window(s, lo, hi)
    )
    done: list = []
    for i, log_probs in stitched_log_probs(model, sessions, config, batch_size=2):
        ahead = [p for p, lo in read if lo > 0 and p not in {sessions[i].path, *done}]
        assert len(ahead) < 2  # at most the rest of the batch (size 2) reads ahead
        done.append(sessions[i].path)
        assert len(log_probs) == -(-len(sessions[i]) // model.hop)
        assert torch.allclose(log_probs.exp().sum(-1), torch.ones(len(log_probs)), atol=1e-4)
    assert len(done) == len(sessions) == len(set(done))


def test_evaluate_rejects_a_bare_model_without_config_and_a_bad_part(corpus, run):
    model, _ = load_run(run)
    with pytest.raises(ValueError, match="TrainConfig"):
        evaluate(model, corpus, "generic")
    with pytest.raises(ValueError, match="part 'dev'"):
        evaluate(run, corpus, "generic", part="dev")
    with pytest.raises(FileNotFoundError, match="'nosuch'"):
        evaluate(run, corpus, "nosuch")


# --- personalize ---------------------------------------------------------------------------


def test_personalize_fine_tunes_on_one_users_split(corpus, run, tmp_path):
    out, result = personalize(
        run, corpus, "user0", tmp_path / "p", steps=2, lr=1e-4, progress=False
    )
    assert out == tmp_path / "p"
    config = json.loads((out / "config.json").read_text())
    assert (config["split"], config["init"], config["steps"], config["lr"]) == (
        "user0",
        str(run),
        2,
        1e-4,
    )
    assert checkpoint(out)["step"] == 2
    user = load_split(corpus, "user0").test_users[0]
    assert result.overall["sessions"] == 1
    assert result.per_user["user"].tolist() == [user]
    assert result.overall == evaluate(out, corpus, "user0").overall
    # the fine-tune started from the generic weights, and moved them
    generic, tuned = checkpoint(run, "best")["model"], checkpoint(out)["model"]
    assert not all(torch.equal(generic[k], tuned[k]) for k in generic)
    # personalizing again into the same directory reuses the finished run
    before = (out / "last.pt").stat().st_mtime_ns
    again, same = personalize(run, corpus, "user0", out, steps=2, lr=1e-4, progress=False)
    assert (out / "last.pt").stat().st_mtime_ns == before and same.overall == result.overall


@pytest.mark.slow
@pytest.mark.outcome
def test_a_short_personalization_lowers_the_users_cer(tmp_path):
    """Fine-tuning on a user's own sessions beats the generic model on that user's test set.

    An outcome of training: CPU kernels (AVX-512, AVX2, scalar) round differently and
    training amplifies it, so the effect must be large by construction, not a margin
    measured on one machine. With 3 personal training sessions the personalized CER ranged
    43.9-57.3 across kernels and failed a 10-point margin on an Intel AVX-512 (issue 19).
    Here the test user has 6 training sessions (72 s, six times any generic user's) and 4
    test sessions (158 characters). CER generic -> personalized, seed 0 (lap-xs 800 steps,
    then 300 steps at lr 5e-3): AVX-512 73.4 -> 35.4, AVX2 74.7 -> 36.1, default 70.9 ->
    34.8; seed 1 (AVX-512) 67.7 -> 34.8. Seed 2's generic model (86.7) has barely left the
    all-blank stage and is not rescued (97.5), so the test keeps the project's seed 0.
    Personalizing at lr 0 gains 0 and fails the 20-point margin. About 70 s on one thread."""
    corpus = synth.generate(
        tmp_path / "corpus",
        replace(synth.CORPUS_PRESETS["smoke"], personal_sessions=(6, 1, 4), test_users=1),
        progress=False,
    )
    config = TrainConfig(
        data_dir=str(corpus),
        preset="lap-xs",
        steps=800,
        batch_size=8,
        lr=1e-2,
        window_s=2.0,
        past_s=0.5,
        future_s=0.1,
        augment=False,
        model={"dropout": 0.0, "time_mask_p": 0.0},
        num_threads=1,
        seed=0,
    )
    generic = fit(config, tmp_path / "generic", progress=False)
    before = evaluate(generic, corpus, "user0")
    _, after = personalize(generic, corpus, "user0", tmp_path / "user0", 300, 5e-3, progress=False)
    cer = before.overall["CER"], after.overall["CER"]
    print(f"user0 CER generic {cer[0]:.2f} -> personalized {cer[1]:.2f}")
    assert before.overall["chars"] == after.overall["chars"] > 150
    assert cer[1] <= cer[0] - 20, f"personalization gained {cer[0] - cer[1]:.1f} CER points"


# --- CLI -----------------------------------------------------------------------------------


def test_cli_train_then_eval_round_trip(corpus, tmp_path, capsys):
    out = tmp_path / "cli-run"
    flags = "--steps 3 --batch-size 4 --window-s 1.0 --lr 1e-3 --seed 1 --checkpoint-every 2"
    rc = cli.main(train_argv(corpus, out, *flags.split()))
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(out)
    config = json.loads((out / "config.json").read_text())
    assert {k: config[k] for k in ("preset", "steps", "batch_size", "window_s", "lr", "seed")} == {
        "preset": "lap-student",
        "steps": 3,
        "batch_size": 4,
        "window_s": 1.0,
        "lr": 1e-3,
        "seed": 1,
    }
    assert config["checkpoint_every"] == 2 and checkpoint(out)["step"] == 3

    rc = cli.main(["eval", "--data", str(corpus), "--run", str(out), "--split", "user0"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"protocol", "overall", "per_user", "decoder", "decoding"}
    assert report["protocol"] == "session"  # the test part: whole sessions
    assert report["overall"] == pytest.approx(evaluate(out, corpus, "user0").overall)
    assert list(report["per_user"]) == [load_split(corpus, "user0").test_users[0]]


def test_cli_errors_name_the_flag_and_exit_2(corpus, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    argv = ["train", "--data", str(missing), "--preset", "lap-xxs", "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    assert f"--data {missing}" in capsys.readouterr().err
    assert cli.main(["eval", "--data", str(corpus), "--run", str(tmp_path / "r")]) == 2
    assert "not a finished run" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_batch_must_divide_by_accumulation(corpus, tmp_path):
    with pytest.raises(ValueError, match="batch_size 4 must divide"):
        fit(tiny(corpus, accumulate=3), tmp_path / "run", progress=False)
