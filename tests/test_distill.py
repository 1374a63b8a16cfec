import numpy as np
import pytest
import torch

from semgkit.distill import frame_mask, kd_loss

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
