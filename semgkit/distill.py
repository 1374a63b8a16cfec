"""Knowledge distillation: a small student learns from a large teacher's per-frame outputs.

The student's objective is ``(1 - alpha) * CTC + alpha * KD``, where KD is the KL divergence
from the teacher's temperature-softened per-frame distribution to the student's (Hinton et
al., 2015), scaled by ``T**2`` so its gradients keep their size as ``T`` grows. There is no
second training loop: :func:`semgkit.train.fit` trains the student with
:class:`DistillObjective` whenever ``TrainConfig.teacher`` names a run directory, so a
distillation run checkpoints and resumes exactly like any other run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float,
    mask: Tensor | None = None,
) -> Tensor:
    """KL(teacher_T || student_T) summed over classes, averaged over frames, times ``T**2``.

    Both inputs are shaped ``(..., classes)``; log-probabilities are valid logits because
    softmax is shift-invariant. ``mask`` (shaped like the inputs without the class axis)
    is True on real frames: padded frames add nothing and do not count in the average.
    The teacher is detached, so gradients reach the student only.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"kd_loss: student logits {tuple(student_logits.shape)} and teacher logits "
            f"{tuple(teacher_logits.shape)} must have the same shape"
        )
    if not temperature > 0:
        raise ValueError(f"kd_loss: temperature must be > 0, got {temperature}")
    t = float(temperature)
    log_q = F.log_softmax(student_logits / t, dim=-1)
    log_p = F.log_softmax(teacher_logits.detach().to(log_q.dtype) / t, dim=-1)
    p = log_p.exp()
    # 0 * log 0 = 0: classes the teacher rules out entirely contribute nothing.
    kl = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p)).sum(dim=-1)
    if mask is None:
        return kl.mean() * t * t
    if mask.shape != kl.shape:
        raise ValueError(
            f"kd_loss: mask {tuple(mask.shape)} must match the frame shape {tuple(kl.shape)}"
        )
    mask = mask.to(torch.bool)
    total = torch.where(mask, kl, torch.zeros_like(kl)).sum()
    return total / mask.sum().clamp_min(1) * t * t


def frame_mask(lengths: Tensor, frames: int) -> Tensor:
    """(B,) frame counts -> (B, frames) bool, True on real frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def check_frame_rates(
    teacher: nn.Module,
    student: nn.Module,
    teacher_name: str,
    student_name: str,
    input_lengths: Tensor,
) -> None:
    """Raise unless teacher and student emit the same number of frames for these inputs.

    Per-frame distillation pairs frame i of the teacher with frame i of the student, which
    only means something when both hop over the input at the same rate.
    """
    t_hop, s_hop = getattr(teacher, "hop", None), getattr(student, "hop", None)
    t_len = teacher.output_lengths(input_lengths.cpu())
    s_len = student.output_lengths(input_lengths.cpu())
    if t_hop != s_hop or not torch.equal(t_len, s_len):
        raise ValueError(
            f"distillation needs teacher and student at the same frame rate: teacher preset "
            f"{teacher_name!r} has hop {t_hop} ({t_len.tolist()} frames), student preset "
            f"{student_name!r} has hop {s_hop} ({s_len.tolist()} frames) for inputs of "
            f"{input_lengths.tolist()} samples"
        )
