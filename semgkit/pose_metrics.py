"""Joint-angle errors as emg2pose computes them, in degrees.

emg2pose's ``AngleMAE`` is the L1 distance between predicted and true angles over every
(sample, joint) without an IK failure; ``PerFingerAngleMAE`` and ``PDAngleMAE`` restrict it
to a finger's joints or to the proximal, mid or distal joints (``pose_format.JOINTS``). It
logs radians; here the errors are in degrees (the unit its paper reports), and pooled over
every scored sample of a whole evaluation (emg2pose averages per-batch means, which equals
this when batches hold equal numbers of scored samples).

Landmark and fingertip distances (millimetres) are left out: they need forward kinematics
through UmeTrack's hand model and skinning code (a separate, non-commercial licence), which
semgkit does not carry.
"""

from __future__ import annotations

import numpy as np
import torch

from semgkit.pose_format import FINGERS, NUM_JOINTS, PD_GROUPS, joints_of

GROUPS = FINGERS + PD_GROUPS


class PoseErrors:
    """Running sums of absolute angle errors per joint over the scored samples."""

    def __init__(self) -> None:
        self.abs_sum = np.zeros(NUM_JOINTS, dtype=np.float64)  # radians
        self.count = 0  # scored samples (each scores every joint)

    def add(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
        """``pred`` and ``target`` shaped (..., 20) in radians; ``mask`` (...) True where
        scored (no IK failure, not padding, not context)."""
        if pred.shape != target.shape or pred.shape[-1] != NUM_JOINTS:
            raise ValueError(
                f"pose errors: prediction {tuple(pred.shape)} and target {tuple(target.shape)} "
                f"must match and end in {NUM_JOINTS} joint angles"
            )
        if mask.shape != pred.shape[:-1]:
            raise ValueError(f"pose errors: mask {tuple(mask.shape)} must be {pred.shape[:-1]}")
        mask = mask.to(torch.bool)
        err = (pred.detach().double() - target.double()).abs()[mask]  # (scored, 20)
        self.abs_sum += err.sum(0).cpu().numpy()
        self.count += len(err)

    def summary(self) -> dict[str, float]:
        """``MAE`` over all joints, and ``MAE_<finger>`` / ``MAE_<group>``, in degrees;
        ``samples``, the scored samples, weighs it when groups are pooled (intervals)."""
        if self.count == 0:
            raise ValueError("pose errors: no scored samples (all masked)")
        per_joint = np.degrees(self.abs_sum / self.count)
        out = {"MAE": float(per_joint.mean())}
        for group in GROUPS:
            out[f"MAE_{group}"] = float(per_joint[joints_of(group)].mean())
        return {**out, "samples": self.count}


def angle_errors(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """:meth:`PoseErrors.summary` of one batch."""
    errors = PoseErrors()
    errors.add(pred, target, mask)
    return errors.summary()
