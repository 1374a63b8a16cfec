from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from semgkit import distill
from semgkit.distill import DistillObjective
from semgkit.losses import ctc_loss, frame_mask, kd_loss

torch.set_num_threads(1)


def direct_kd(student: np.ndarray, teacher: np.ndarray, t: float, mask=None) -> float:
    """KL(softmax(teacher/t) || softmax(student/t)) per frame, in float64 numpy, times t^2."""
    s, te = student.astype(np.float64) / t, teacher.astype(np.float64) / t
    q = np.exp(s - s.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    p = np.exp(te - te.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    kl = (p * (np.log(p) - np.log(q))).sum(-1)
    if mask is None:
        return float(kl.mean() * t * t)
    return float(kl[mask].mean() * t * t)


@pytest.mark.parametrize("t", [1.0, 2.0, 4.0, 8.0])
def test_kd_loss_matches_direct_float64(t):
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 7, 99, generator=g, dtype=torch.float64) * 3
    te = torch.randn(3, 7, 99, generator=g, dtype=torch.float64) * 3
    got = kd_loss(s, te, t).item()
    assert got == pytest.approx(direct_kd(s.numpy(), te.numpy(), t), rel=1e-10)
    # float32 log-probabilities (what models emit) agree to float32 precision
    got32 = kd_loss(s.float().log_softmax(-1), te.float().log_softmax(-1), t).item()
    assert got32 == pytest.approx(direct_kd(s.numpy(), te.numpy(), t), rel=1e-4)
    assert got > 0


def test_kd_loss_zero_for_equal_logits_and_shift_invariant():
    x = torch.randn(2, 5, 99)
    assert kd_loss(x, x.clone(), 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(x, x + 7.0, 3.0).item() == pytest.approx(0.0, abs=1e-5)


def test_kd_loss_mask_excludes_padded_frames():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 6, 99, generator=g, dtype=torch.float64)
    te = torch.randn(2, 6, 99, generator=g, dtype=torch.float64)
    lengths = torch.tensor([6, 2])
    mask = frame_mask(lengths, 6)
    assert mask.tolist() == [[True] * 6, [True, True, False, False, False, False]]
    expected = direct_kd(s.numpy(), te.numpy(), 2.0, mask.numpy())
    assert kd_loss(s, te, 2.0, mask).item() == pytest.approx(expected, rel=1e-10)
    # whatever sits in padded frames changes nothing
    s2, te2 = s.clone(), te.clone()
    s2[1, 2:] = 1e3 * torch.randn(4, 99, dtype=torch.float64)
    te2[1, 2:] = -5.0
    assert kd_loss(s2, te2, 2.0, mask).item() == pytest.approx(expected, rel=1e-10)


def test_kd_loss_gradients_reach_student_only():
    s = torch.randn(2, 4, 99, requires_grad=True)
    te = torch.randn(2, 4, 99, requires_grad=True)
    mask = frame_mask(torch.tensor([4, 1]), 4)
    kd_loss(s, te, 2.0, mask).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert te.grad is None
    assert s.grad[1, 1:].abs().sum() == 0  # padded frames get no gradient


def test_kd_loss_rejects_bad_input():
    x = torch.randn(2, 4, 99)
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(x, torch.randn(2, 5, 99), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(x, x, 0.0)
    with pytest.raises(ValueError, match="mask"):
        kd_loss(x, x, 1.0, torch.ones(2, 5, dtype=torch.bool))


class Toy(nn.Module):
    """The model interface in miniature: raw (B, T, 2, 16) sEMG -> (B, T // hop, 99)."""

    def __init__(self, hop: int, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.hop = hop
        self.conv = nn.Conv1d(32, 99, hop, stride=hop)

    def output_lengths(self, lengths):
        return lengths // self.hop

    def forward(self, emg, lengths=None):
        return self.conv(emg.flatten(2).transpose(1, 2)).transpose(1, 2).log_softmax(-1)


def toy_batch(seed: int, lengths=(64, 48)) -> dict:
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 98, (len(lengths), 3), generator=g)
    return {
        "emg": torch.randn(len(lengths), max(lengths), 2, 16, generator=g),
        "input_lengths": torch.tensor(lengths),
        "targets": targets,
        "target_lengths": torch.tensor([3, 2]),
    }


def toy_objective(monkeypatch, tmp_path, teacher_hop=4, alpha=0.5, temperature=2.0, cache=False):
    teacher = Toy(teacher_hop, seed=1).eval().requires_grad_(False)
    monkeypatch.setattr(distill, "load_teacher", lambda run_dir: (teacher, "big-teacher"))
    config = SimpleNamespace(
        teacher=str(tmp_path / "teacher"),
        preset="small-student",
        temperature=temperature,
        alpha=alpha,
        teacher_cache=str(tmp_path / "cache") if cache else False,
    )
    return DistillObjective(config), teacher


def test_objective_mixes_ctc_and_kd(monkeypatch, tmp_path):
    objective, teacher = toy_objective(monkeypatch, tmp_path, alpha=0.3, temperature=4.0)
    student, batch = Toy(4, seed=2), toy_batch(0)
    loss, stats = objective(student, batch)
    lp, frames = student(batch["emg"]), student.output_lengths(batch["input_lengths"])
    ctc = ctc_loss(lp, frames, batch)
    kd = kd_loss(lp, teacher(batch["emg"]), 4.0, frame_mask(frames, lp.shape[1]))
    assert loss.item() == pytest.approx(0.7 * ctc.item() + 0.3 * kd.item(), rel=1e-6)
    assert stats["ctc"] == pytest.approx(ctc.item()) and stats["kd"] == pytest.approx(kd.item())


def test_teacher_frozen_and_never_updated(monkeypatch, tmp_path):
    objective, teacher = toy_objective(monkeypatch, tmp_path)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = Toy(4, seed=2).train()
    opt = torch.optim.SGD(student.parameters(), lr=1.0)
    for step in range(3):
        opt.zero_grad()
        objective(student, toy_batch(step))[0].backward()
        opt.step()
    assert not teacher.training
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not any(p is q for p in student.parameters() for q in teacher.parameters())


def test_frame_rate_mismatch_names_both_presets(monkeypatch, tmp_path):
    objective, _ = toy_objective(monkeypatch, tmp_path, teacher_hop=8)
    with pytest.raises(ValueError, match="big-teacher.*small-student"):
        objective(Toy(4, seed=2), toy_batch(0))


@pytest.mark.parametrize("field, value", [("alpha", 1.5), ("temperature", 0.0)])
def test_objective_rejects_bad_settings(monkeypatch, tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        toy_objective(monkeypatch, tmp_path, **{field: value})


def test_teacher_cache_hits_repeat_windows_and_matches_live(monkeypatch, tmp_path):
    live, _ = toy_objective(monkeypatch, tmp_path)
    cached, _ = toy_objective(monkeypatch, tmp_path, cache=True)
    student = Toy(4, seed=2)
    first = cached(student, toy_batch(0))
    assert first[1]["teacher_cache_hit_rate"] == 0.0
    again = cached(student, toy_batch(0))
    assert again[1]["teacher_cache_hit_rate"] == pytest.approx(0.5)  # 2 misses, then 2 hits
    reference = live(student, toy_batch(0))[0].item()
    assert again[0].item() == pytest.approx(reference, rel=1e-3)  # float16 storage
    # a new window is a miss, never a stale hit
    cached(student, toy_batch(1))
    assert (cached.cache.hits, cached.cache.misses) == (2, 4)
    # a different teacher reads from a different folder
    other = Toy(4, seed=3).eval().requires_grad_(False)
    monkeypatch.setattr(distill, "load_teacher", lambda run_dir: (other, "other"))
    config = SimpleNamespace(
        teacher="t", preset="s", temperature=2.0, alpha=0.5, teacher_cache=str(tmp_path / "cache")
    )
    fresh = DistillObjective(config)
    assert fresh.cache.dir != cached.cache.dir
    assert fresh(student, toy_batch(0))[1]["teacher_cache_hit_rate"] == 0.0
