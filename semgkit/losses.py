"""The training objectives' losses: CTC on the labels, the distillation KL, emg2pose's L1.

Each is a pure function of tensors, so the engine (:mod:`semgkit.train`), the distillation
objective (:mod:`semgkit.distill`) and the pose task (:mod:`semgkit.pose_train`) share one
definition and the book can check each against a version written out by hand.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from semgkit.charset import CHARSET


def ctc_loss(log_probs: Tensor, output_lengths: Tensor, batch: dict[str, Tensor]) -> Tensor:
    """CTC on the labels, averaged over the batch (per-sequence sums over target lengths)."""
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),
        batch["targets"],
        output_lengths,
        batch["target_lengths"],
        blank=CHARSET.blank,
        reduction="mean",
        zero_infinity=True,
    )


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


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """emg2pose's loss: L1 over the (frame, joint) pairs where ``mask``; 0 if none."""
    if not mask.any():
        return pred.sum() * 0.0
    return (pred.float() - target)[mask].abs().mean()
