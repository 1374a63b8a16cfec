"""The pose task in the training engine: targets, loss, training outcome, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semgkit import models
from semgkit.losses import masked_l1
from semgkit.pose import PoseWindows, load_pose_split, pose_collate
from semgkit.pose_metrics import PoseErrors
from semgkit.pose_train import POSE, at_frames, evaluate_pose, pose_objective
from semgkit.runs import TrainConfig, load_run
from semgkit.stream import SlidingWindowStreamer, Streamer, window_inference
from semgkit.synth_pose import generate_pose
from semgkit.train import fit


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_pose(tmp_path_factory.mktemp("pose") / "smoke", "smoke", progress=False)


def _config(corpus, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(corpus),
        split="generic",
        preset="lap-xs",
        model=POSE,
        batch_size=16,
        lr=5e-3,
        window_s=1.0,
        past_s=0.0,
        future_s=0.0,
        val_windows=64,
        num_workers=0,
        num_threads=1,
    )
    return TrainConfig(**{**base, **kw})


def test_targets_are_each_frames_last_sample_and_the_loss_is_masked_l1():
    angles = torch.arange(2 * 60 * 20, dtype=torch.float32).reshape(2, 60, 20)
    mask = torch.ones(2, 60, dtype=torch.bool)
    mask[1, 39] = False
    target, frame_mask = at_frames({"angles": angles, "mask": mask}, frames=3, hop=20)
    torch.testing.assert_close(target, angles[:, [19, 39, 59]])
    assert frame_mask.tolist() == [[True] * 3, [True, False, True]]
    pred = target + 0.5
    pred[1, 1] += 100.0  # masked: must not count
    assert masked_l1(pred, target, frame_mask).item() == pytest.approx(0.5)
    assert masked_l1(pred, target, torch.zeros_like(frame_mask)).item() == 0.0


def test_pose_objective_on_a_batch_of_windows(corpus):
    split = load_pose_split(corpus, "generic")
    windows = PoseWindows(split.train, 400)
    batch = pose_collate([windows[0], windows[1]])
    model = models.build("lap-xs", **POSE)
    loss, _ = pose_objective(model, batch)
    loss.backward()
    assert loss.item() > 0 and model.head.linear.weight.grad.abs().sum() > 0


def _constant_pose_error(train, held) -> float:
    """The error of always predicting the training stages' mean pose: what a model that
    ignores the sEMG can reach."""
    windows = PoseWindows(train, 2000)
    batch = pose_collate([windows[i] for i in range(len(windows))])
    mean = batch["angles"][batch["mask"]].mean(0)
    windows = PoseWindows(held, 2000)
    batch = pose_collate([windows[i] for i in range(len(windows))])
    errors = PoseErrors()
    errors.add(mean.expand_as(batch["angles"]), batch["angles"], batch["mask"])
    return errors.summary()["MAE"]


@pytest.mark.outcome
def test_regression_training_lowers_the_angle_error(corpus, tmp_path):
    """150 steps of lap-xs with the pose head (about 20 s on one core). Measured on this
    machine: validation error 23.9 deg untrained, 5.20 predicting the mean pose, 4.06 after
    training (4.06 under ATEN_CPU_CAPABILITY=default too, 0.001 deg apart); the bounds
    leave a margin of 0.3 deg, hundreds of times the cross-CPU difference."""
    config = _config(corpus, steps=150)
    torch.manual_seed(config.seed)
    untrained = evaluate_pose(
        models.build("lap-xs", **POSE), load_pose_split(corpus, "generic").val, config
    )
    fit(config, tmp_path / "run", progress=False)
    model, config = load_run(tmp_path / "run")
    split = load_pose_split(corpus, "generic")
    trained = evaluate_pose(model, split.val, config)
    constant = _constant_pose_error(split.train, split.val)
    assert trained["overall"]["MAE"] < untrained["overall"]["MAE"] - 15.0
    assert trained["overall"]["MAE"] < constant - 0.8  # it reads the pose from the sEMG
    assert set(trained) == {"overall"} | {s.user for s in PoseWindows(split.val, 2000).sessions}
    assert {"MAE_thumb", "MAE_pinky", "MAE_proximal", "MAE_distal"} <= set(trained["overall"])


@pytest.mark.parametrize("preset", ["lap-xs", "tds-laptop"])
def test_streaming_a_pose_model_equals_offline(corpus, preset):
    torch.manual_seed(0)
    model = models.build(preset, **POSE).eval()
    session = load_pose_split(corpus, "generic").test[0]
    emg = torch.from_numpy(PoseWindows([session], 3000).sessions[0].read(0, 3000)[0])
    with torch.no_grad():
        offline = model(emg[None])[0]
    for chunk in (160, 333):
        streamer = Streamer(model, chunk)
        parts = [streamer.step(emg[i : i + chunk]).log_probs for i in range(0, len(emg), chunk)]
        streamed = torch.cat(parts)
        assert streamed.shape == offline.shape == (len(emg) // model.hop, 20)
        torch.testing.assert_close(streamed, offline, atol=1e-4, rtol=1e-4)
        assert streamer.text == ""  # no text from a regression head
    assert np.isfinite(offline.numpy()).all()


def test_sliding_window_streaming_of_a_pose_model_equals_window_inference():
    # the paper presets normalise over the window, so a pose head on one streams this way
    torch.manual_seed(0)
    model = models.build("tiny", **POSE).eval()
    emg = torch.randn(997, 2, 16)
    offline = window_inference(model, emg, 400, 80)
    assert offline.shape == (960 // model.hop, 20)
    streamer = SlidingWindowStreamer(model, 400, 80)
    parts = [streamer.step(emg[i : i + 37]).log_probs for i in range(0, len(emg), 37)]
    assert torch.equal(torch.cat(parts), offline)
    assert streamer.text == ""


@pytest.fixture(scope="module")
def pose_teacher(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "lap-xs"
    return fit(_config(corpus, steps=6, val_windows=4), out, progress=False)


def test_distillation_with_a_regression_objective_mixes_the_two_l1_terms(corpus, pose_teacher):
    from semgkit.distill import DistillObjective
    from semgkit.losses import frame_mask

    config = _config(corpus, preset="lap-student", teacher=str(pose_teacher), alpha=0.3)
    objective = DistillObjective(config)
    windows = PoseWindows(load_pose_split(corpus, "generic").train, 2000)
    batch = pose_collate(
        [windows[0], (windows[1][0][:1500], windows[1][1][:1500], windows[1][2][:1500])]
    )
    torch.manual_seed(0)
    student = models.build("lap-student", **POSE).eval()
    loss, stats = objective(student, batch)
    with torch.no_grad():
        pred, teacher = (
            student(batch["emg"], batch["input_lengths"]),
            objective.teacher(batch["emg"]),
        )
    target, mask = at_frames(batch, pred.shape[1], student.hop)
    real = frame_mask(student.output_lengths(batch["input_lengths"]), pred.shape[1])
    l1 = (pred - target)[mask].abs().mean()
    kd = (pred - teacher)[real].abs().mean()  # padded frames of the short window left out
    assert loss.item() == pytest.approx((0.7 * l1 + 0.3 * kd).item(), rel=1e-5)
    assert stats == pytest.approx({"l1": l1.item(), "kd": kd.item()}, rel=1e-5)


def test_a_distillation_run_trains_a_pose_student_and_refuses_a_ctc_teacher(
    corpus, pose_teacher, tmp_path
):
    import json

    config = _config(
        corpus,
        preset="lap-student",
        teacher=str(pose_teacher),
        alpha=0.5,
        steps=4,
        val_windows=4,
        teacher_cache=True,
    )
    fit(config, tmp_path / "student", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "student" / "metrics.jsonl").open()]
    assert {"l1", "kd", "teacher_cache_hit_rate"} <= set(rows[0]) and "val_mae" in rows[-1]
    ctc_teacher = tmp_path / "ctc"
    ctc_teacher.mkdir()
    from dataclasses import asdict

    from semgkit.runs import checkpoint_state, model_config, save_atomic, write_json

    ctc_config = TrainConfig(data_dir=str(corpus), preset="lap-xs")
    write_json(ctc_teacher / "config.json", asdict(ctc_config))
    save_atomic(
        checkpoint_state(models.build("lap-xs"), ctc_config, model_config(ctc_config)),
        ctc_teacher / "best.pt",
    )
    bad = _config(corpus, preset="lap-student", teacher=str(ctc_teacher), steps=2)
    with pytest.raises(ValueError, match=r"--teacher .*a pose student needs a pose teacher"):
        fit(bad, tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()  # refused before the run directory is made
