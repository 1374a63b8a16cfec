"""GPU memory: measured per window on CPU, and a CUDA out-of-memory error in training
(simulated: a step raises torch.cuda.OutOfMemoryError) stops the run with one line that
names the micro-batch and the accumulate that would fit, keeping last.pt."""

import shutil
from pathlib import Path

import pytest
import torch

from semgkit import cli, memory, synth, train
from semgkit.runs import TrainConfig

DATA = dict(preset="lap-student", window_s=1.0, past_s=0.2, future_s=0.05, num_threads=1)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("corpus") / "smoke", "smoke", progress=False)


def test_activation_memory_grows_with_windows_and_their_length():
    one, two = (memory.activation_bytes("lap-student", 1.25, b) for b in (1, 2))
    assert 0 < one < two <= 2 * one  # some saved tensors do not grow with the batch
    assert memory.per_window_bytes("lap-student", 1.25) == two - one
    assert memory.per_window_bytes("lap-student", 2.5) > 1.8 * memory.per_window_bytes(
        "lap-student", 1.25
    )


def test_state_is_sixteen_bytes_a_parameter_plus_a_teachers_weights():
    from semgkit import models

    n = models.count_params(models.build("lap-student"))
    t = models.count_params(models.build("lap-xs"))
    assert memory.state_bytes("lap-student") == 16 * n
    assert memory.state_bytes("lap-student", "lap-xs") == 16 * n + 4 * t


def test_the_accumulate_that_fits_divides_the_batch():
    assert memory.micro_batch_that_fits(100, 50, 1000) == int((0.85 * 1000 - 50) // 100)
    assert memory.micro_batch_that_fits(100, 2000, 1000) == 0
    assert memory.accumulate_that_fits(640, 8, 2, 40) == 2  # 40 a GPU already fits
    assert memory.accumulate_that_fits(640, 8, 2, 15) == 8  # 80 / 8 = 10 <= 15 (6, 7 do not divide)
    assert memory.accumulate_that_fits(12, 1, 1, 5) == 3
    assert memory.accumulate_that_fits(12, 1, 1, 0) is None


def test_out_of_memory_names_the_fitting_accumulate_and_keeps_last_pt(
    corpus, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "run"
    args = ["train", "--data", str(corpus), "--preset", "lap-student", "--out", str(out)]
    args += ["--steps", "6", "--batch-size", "4", "--window-s", "1.0", "--checkpoint-every", "2"]
    config = TrainConfig(data_dir=str(corpus), preset="lap-student", window_s=1.0)  # as the CLI
    window = config.past_s + config.window_s + config.future_s
    per_window = memory.per_window_bytes("lap-student", window)
    fixed = memory.state_bytes(train.model_config(config))
    # a GPU that holds the fixed state and 1.5 windows: micro-batch 1, accumulate 4
    gpu = int((fixed + 1.5 * per_window) / memory.HEADROOM)
    monkeypatch.setattr(memory, "device_bytes", lambda device: gpu)
    calls, ctc = [], train.ctc_objective
    saved = tmp_path / "last-step2.pt"

    def too_big(model, batch):
        calls.append(1)
        if len(calls) == 3:  # step 3: last.pt holds step 2
            shutil.copy(out / "last.pt", saved)
        if len(calls) == 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return ctc(model, batch)

    monkeypatch.setattr(train, "ctc_objective", too_big)
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("semgkit train: error: GPU out of memory"), err
    assert "out of memory at step 4" in err and "a micro-batch of 4 window(s)" in err
    assert "accumulate 4 (micro-batch 1) would fit" in err and "--accumulate 4 --resume" in err
    assert f"{out / 'last.pt'} is kept" in err
    assert (out / "last.pt").read_bytes() == saved.read_bytes()
    assert not (out / "done.json").exists()
    # the advice works: the run resumes from step 2 in micro-batches of one window
    monkeypatch.setattr(train, "ctc_objective", ctc)
    assert cli.main([*args, "--accumulate", "4", "--resume"]) == 0
    assert "accumulate=4" in capsys.readouterr().err
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 6


def test_out_of_memory_on_an_unknown_gpu_halves_the_micro_batch(corpus, tmp_path, monkeypatch):
    config = TrainConfig(data_dir=str(corpus), steps=2, batch_size=8, **DATA)

    def oom(model, batch):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(train, "ctc_objective", oom)
    with pytest.raises(
        memory.GpuOutOfMemory, match=r"accumulate 2 \(micro-batch 4\).*no checkpoint"
    ):
        train.fit(config, tmp_path / "run", progress=False)


def test_memory_command_prints_measured_and_projected_columns(capsys):
    assert cli.main(["memory", "--presets", "lap-student", "--window-s", "1.25"]) == 0
    text = capsys.readouterr().out
    assert "activations MiB per window (measured, CPU fp32)" in text
    assert "max micro-batch 16 GB (projection)" in text and "lap-student" in text
    assert cli.main(["memory", "--micro-batch", "0"]) == 2
