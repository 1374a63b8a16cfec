"""Faults and bad inputs around run directories (semgkit.runs, semgkit.train): a second
writer, kills and Ctrl-C at chosen steps, a full or read-only disk, damaged checkpoints,
values that cannot train. Each case is a line of docs/RELIABILITY.md."""

# ruff: noqa: F811 (the corpus and one_thread fixtures come from tests/test_train.py)

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from semgkit import cli, runs, train
from semgkit.runs import RunInUse, TrainConfig, load_run, run_config
from semgkit.stopping import Interrupted
from semgkit.train import fit
from tests._argv import distill_argv
from tests.test_train import corpus, one_thread, tiny  # noqa: F401 (fixtures)

WORKER = Path(__file__).resolve().parent / "_train_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """An uninterrupted tiny run: every interrupted run below must end with its weights."""
    return fit(tiny(corpus), tmp_path_factory.mktemp("ref") / "run", progress=False)


def state(run_dir: Path, which: str = "last") -> dict:
    return torch.load(Path(run_dir) / f"{which}.pt", map_location="cpu", weights_only=False)


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = state(a)["model"], state(b)["model"]
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.name != runs.LOCK}


def worker(config: TrainConfig, out: Path, *flags: str, **popen) -> subprocess.Popen:
    path = out.parent / f"{out.name}-config.json"
    path.write_text(json.dumps(asdict(config)))
    cmd = [sys.executable, str(WORKER), str(path), str(out), *flags]
    return subprocess.Popen(cmd, env=ENV, text=True, **popen)


def last_line(err: str) -> str:
    """The message after any progress bar, which must end on a line of its own."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and sum("semgkit" in line for line in lines) == 1, err
    return lines[-1]


def one_line_error(capsys, rc: int, *needles: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    line = last_line(err)
    assert line.startswith("semgkit "), err
    for needle in needles:
        assert needle in line, err
    return line


# --- one writer per run directory --------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_directory_and_holder(corpus, tmp_path, capsys):
    out, go = tmp_path / "run", tmp_path / "go"
    first = worker(
        tiny(corpus),
        out,
        "--pause-after",
        "2",
        "--until",
        str(go),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert first.stdout.readline().strip() == "paused"  # it holds the directory now
        before = snapshot(out)
        with pytest.raises(RunInUse, match=rf"{out}.*in use.*pid {first.pid}\b"):
            fit(tiny(corpus, lr=1e-3), out, progress=False)
        with pytest.raises(RunInUse, match=f"pid {first.pid}"):
            fit(tiny(corpus), out, resume=True, progress=False)
        argv = ["train", "--data", str(corpus), "--preset", "lap-xxs", "--out", str(out)]
        one_line_error(capsys, cli.main(argv), str(out), f"pid {first.pid}")
        assert snapshot(out) == before  # the refused writers changed nothing
    finally:
        go.touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert json.loads((out / "config.json").read_text()) == asdict(tiny(corpus))


def test_a_lock_left_by_a_killed_process_is_taken_over(corpus, reference, tmp_path):
    out, go = tmp_path / "run", tmp_path / "never"
    first = worker(
        tiny(corpus, checkpoint_every=2),
        out,
        "--pause-after",
        "3",
        "--until",
        str(go),
        stdout=subprocess.PIPE,
    )
    assert first.stdout.readline().strip() == "paused"
    first.kill()  # dies holding the lock; its pid stays written in .lock
    first.wait()
    assert (out / runs.LOCK).read_text().strip() == str(first.pid)
    fit(tiny(corpus, checkpoint_every=2), out, resume=True, progress=False)
    assert_same_weights(reference, out)
    assert (out / runs.LOCK).read_text().strip() == str(os.getpid())


# --- kills, Ctrl-C and the default checkpoint period -------------------------------------


def test_fit_and_cli_default_to_a_periodic_checkpoint():
    assert train.fit.__defaults__[-1] == runs.CHECKPOINT_S == 600.0
    args = cli.build_parser().parse_args(["train", "--data", "d", "--preset", "p", "--out", "o"])
    assert args.checkpoint_minutes * 60 == runs.CHECKPOINT_S
    args = cli.build_parser().parse_args(
        [
            "distill",
            "--data",
            "d",
            "--teacher",
            "t",
            "--preset",
            "p",
            "--temperature",
            "2",
            "--alpha",
            "0.5",
            "--out",
            "o",
        ]
    )
    assert args.checkpoint_minutes * 60 == runs.CHECKPOINT_S


def test_time_based_checkpoint_then_sigkill_resumes_exactly(corpus, reference, tmp_path):
    # checkpoint_every is 0 (the CLI default): only the time-based period saves last.pt
    out = tmp_path / "run"
    proc = worker(
        tiny(corpus), out, "--kill-after", "4", "--checkpoint-s", "0", stderr=subprocess.PIPE
    )
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert state(out)["step"] == 4
    fit(tiny(corpus), out, resume=True, progress=False)
    assert_same_weights(reference, out)


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(
    corpus, reference, tmp_path, monkeypatch, capsys
):
    calls = []
    ctc = train.ctc_objective

    def interrupted_in_step_3(model, batch):
        calls.append(1)
        if len(calls) == 3:  # Ctrl-C in the middle of a step: that step still completes
            signal.raise_signal(signal.SIGINT)
        return ctc(model, batch)

    monkeypatch.setattr(train, "ctc_objective", interrupted_in_step_3)
    out, recipe = tmp_path / "run", tmp_path / "recipe.json"
    recipe.write_text(json.dumps(asdict(tiny(corpus))))  # the reference's recipe
    argv = ["train", "--config", str(recipe), "--out", str(out)]
    handler = signal.getsignal(signal.SIGINT)
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert "stopping after this step" in err  # said at once, on the first Ctrl-C
    assert last_line(err) == (
        f"semgkit train: interrupted at step 3 of 6; {out / 'last.pt'} is saved: "
        "rerun the same command with --resume to continue"
    )
    assert state(out)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    monkeypatch.setattr(train, "ctc_objective", ctc)
    assert cli.main([*argv, "--resume"]) == 0
    assert_same_weights(reference, out)


def test_ctrl_c_in_a_library_call_raises_a_keyboard_interrupt(corpus, tmp_path, monkeypatch):
    ctc = train.ctc_objective

    def interrupt(model, batch):
        signal.raise_signal(signal.SIGINT)
        return ctc(model, batch)

    monkeypatch.setattr(train, "ctc_objective", interrupt)
    with pytest.raises(KeyboardInterrupt, match="step 1 of 6.*--resume"):
        fit(tiny(corpus), tmp_path / "run", progress=False)
    assert isinstance(Interrupted("x"), KeyboardInterrupt)
    assert state(tmp_path / "run")["step"] == 1


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_stopped_before_its_first_checkpoint_starts_over(corpus, reference, tmp_path, resume):
    # a kill after step 2 with no checkpoint yet, then during the first checkpoint write
    out = tmp_path / "run"
    proc = worker(tiny(corpus), out, "--kill-after", "2", stderr=subprocess.PIPE)
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    shutil.copy(reference / "last.pt", out / f".last.pt.{proc.pid}.tmp")
    with (out / f".last.pt.{proc.pid}.tmp").open("r+b") as f:
        f.truncate(1000)
    assert {p.name for p in out.iterdir()} >= {"config.json", "metrics.jsonl"}
    assert not (out / "last.pt").exists()

    fit(tiny(corpus), out, resume=resume, progress=False)
    assert_same_weights(reference, out)
    assert not list(out.glob(".*.tmp"))
    steps = [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [
        json.loads(r)["step"] for r in (reference / "metrics.jsonl").read_text().splitlines()
    ]


def test_a_directory_with_foreign_files_is_never_cleared(corpus, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a run's.*notes.txt"):
        fit(tiny(corpus), out, resume=True, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"


# --- disk faults and damaged checkpoints ----------------------------------------------------


def test_disk_full_during_a_checkpoint_keeps_the_previous_one(
    corpus, reference, tmp_path, monkeypatch
):
    fsync, writes = os.fsync, []

    def full_on_second_checkpoint(fd):
        if "last.pt" in os.readlink(f"/proc/self/fd/{fd}"):
            writes.append(fd)
            if len(writes) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(fd)

    monkeypatch.setattr(runs.os, "fsync", full_on_second_checkpoint)
    out = tmp_path / "run"
    with pytest.raises(
        OSError, match=r"last\.pt: cannot write \(disk full\).*previous last\.pt is intact"
    ):
        fit(tiny(corpus, checkpoint_every=2), out, progress=False)
    monkeypatch.undo()
    assert state(out)["step"] == 2
    assert not list(out.glob(".*.tmp"))
    fit(tiny(corpus, checkpoint_every=2), out, resume=True, progress=False)
    assert_same_weights(reference, out)


def unshare_mount(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) as root of a private user+mount namespace, where it may mount."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode:
        pytest.skip("user namespaces are not available here")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-ec", script],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def test_a_full_tmpfs_fails_cleanly_and_resumes_after_space_is_freed(corpus, reference, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size_kb = (reference / "last.pt").stat().st_size // 1024
    config = tmp_path / "config.json"
    config.write_text(json.dumps(asdict(tiny(corpus, checkpoint_every=2))))
    train_cmd = f"{sys.executable} -m semgkit train --config {config} --out {mnt}/run"
    # room for config.json, the log and one checkpoint, not for a second one beside it
    proc = unshare_mount(
        f"mount -t tmpfs -o size={size_kb * 3 // 2}k tmpfs {mnt}\n"
        f"if {train_cmd} 2> {tmp_path}/err; then exit 3; fi\n"
        f"cp -a {mnt}/run {tmp_path}/after-full\n"
        f"mount -o remount,size={size_kb * 4}k {mnt}\n"
        f"{train_cmd} --resume\n"
        f"cp -a {mnt}/run {tmp_path}/resumed\n"
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    err = last_line((tmp_path / "err").read_text())
    assert err.startswith("semgkit train: error: ") and err.endswith(
        f"{mnt}/run/last.pt: cannot write (disk full): No space left on device; "
        "the previous last.pt is intact"
    )
    assert state(tmp_path / "after-full")["step"] == 2
    assert not list((tmp_path / "after-full").glob(".*.tmp"))
    assert_same_weights(reference, tmp_path / "resumed")


def test_a_read_only_run_directory_is_a_one_line_error(corpus, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = unshare_mount(
        f"mount -t tmpfs -o ro tmpfs {ro}\n"
        f"{sys.executable} -m semgkit train --data {corpus} --preset lap-xxs --out {ro}/run"
        " || echo rc=$?"
    )
    assert "rc=2" in proc.stdout, proc.stderr[-3000:]
    assert last_line(proc.stderr) == (
        f"semgkit train: error: run directory {ro}/run: cannot write (Read-only file system)"
    )


@pytest.mark.parametrize("which", ["last", "best"])
def test_a_truncated_checkpoint_is_named_with_what_to_do(reference, tmp_path, which):
    run = shutil.copytree(reference, tmp_path / "run")
    damaged = run / f"{which}.pt"
    damaged.write_bytes(damaged.read_bytes()[:5000])
    other = "best" if which == "last" else "last"
    if which == "last":
        with pytest.raises(ValueError, match=r"last\.pt: damaged or truncated.*copy best\.pt"):
            fit(run_config(run), run, resume=True, progress=False)
    with pytest.raises(ValueError, match=rf"{which}\.pt: damaged or truncated.*{other}\.pt"):
        load_run(run, which)


# --- values that cannot train, refused before the directory exists ------------------------


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--steps", "0"], "--steps 0: must be an integer >= 1"),
        (["--steps", "-5"], "--steps -5: must be an integer >= 1"),
        (["--batch-size", "0"], "--batch-size 0: must be an integer >= 1"),
        (["--lr", "nan"], "--lr nan: must be a number > 0"),
        (["--checkpoint-minutes", "0"], "--checkpoint-minutes 0.0: must be > 0"),
    ],
)
def test_values_that_cannot_train_are_refused_naming_the_flag(
    corpus, tmp_path, capsys, flags, needle
):
    out = tmp_path / "run"
    argv = ["train", "--data", str(corpus), "--preset", "lap-xxs", "--out", str(out), *flags]
    one_line_error(capsys, cli.main(argv), needle)
    assert not out.exists()


def test_out_that_is_a_file_is_a_one_line_error(corpus, tmp_path, capsys):
    out = tmp_path / "file"
    out.write_text("x")
    argv = ["train", "--data", str(corpus), "--preset", "lap-xxs", "--out", str(out)]
    one_line_error(capsys, cli.main(argv), f"run directory {out} is a file")
    assert out.read_text() == "x"


def test_teacher_at_another_frame_rate_is_refused_before_any_write(corpus, tmp_path, capsys):
    teacher = tmp_path / "tds-teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text(json.dumps(asdict(tiny(corpus, preset="tds-laptop"))))
    out = tmp_path / "student"
    argv = distill_argv(corpus, teacher, out)
    one_line_error(capsys, cli.main(argv), f"--teacher {teacher}", "hops 16", "'lap-student' 20")
    assert not out.exists()


def test_resume_with_another_config_lists_the_fields_that_differ(reference):
    before = snapshot(reference)
    changed = tiny(run_config(reference).data_dir, lr=1e-3, seed=4)
    with pytest.raises(
        ValueError, match=r"different config.*lr: 0\.0005 -> 0\.001; seed: 0 -> 4\)"
    ):
        fit(changed, reference, resume=True, progress=False)
    assert snapshot(reference) == before


def test_bench_iterations_zero_is_a_one_line_error(capsys):
    one_line_error(capsys, cli.main(["bench", "--iterations", "0"]), "--iterations 0")


# --- written outputs are as readable as any file the user creates --------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_outputs_honour_the_umask(tmp_path, umask):
    from semgkit.atomic import atomic_write
    from semgkit.export import export_onnx
    from semgkit.models import build

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "table.csv", "a,b\n")
        export_onnx(build("lap-xxs"), tmp_path / "model.onnx")
        runs.write_json(tmp_path / "done.json", {})
    finally:
        os.umask(old)
    for name in ("table.csv", "model.onnx", "done.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.json", "model.onnx", "table.csv"]
