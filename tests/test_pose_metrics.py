"""Joint-angle errors against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from semgkit.pose_format import JOINTS
from semgkit.pose_metrics import PoseErrors, angle_errors


def test_errors_by_hand_overall_per_finger_and_proximal_distal():
    target = torch.full((1, 2, 20), 0.5, dtype=torch.float64)
    pred = target.clone()
    pred[0, 0] += torch.deg2rad(
        torch.arange(1.0, 21.0, dtype=torch.float64)
    )  # joint j is off by j + 1 degrees
    pred[0, 1] += 3.0  # a sample with an IK failure: masked, must not count
    got = angle_errors(pred, target, torch.tensor([[True, False]]))
    want = {
        "MAE": 10.5,  # mean of 1..20
        "MAE_thumb": 2.5,  # joints 0-3: 1..4
        "MAE_index": 6.5,  # 5..8
        "MAE_middle": 10.5,
        "MAE_ring": 14.5,
        "MAE_pinky": 18.5,
        "MAE_proximal": 9.5,  # joints 0,1,4,5,8,9,12,13,16,17: (1+2+5+6+9+10+13+14+17+18)/10
        "MAE_mid": 11.0,  # joints 2,6,10,14,18
        "MAE_distal": 12.0,  # joints 3,7,11,15,19
        "samples": 1,  # the scored samples, which weigh a group when groups are pooled
    }
    assert got == pytest.approx(want, abs=1e-9)
    assert [name for name, finger, _ in JOINTS if finger == "thumb"][-1] == "THUMB_IP_FE"


def test_pooled_over_batches_equals_emg2pose_l1_over_all_scored_samples():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(2, 3, 50, 20, generator=gen).unbind(0)
    mask = torch.rand(3, 50, generator=gen) > 0.3
    errors = PoseErrors()
    errors.add(pred[:1], target[:1], mask[:1])
    errors.add(pred[1:], target[1:], mask[1:])
    l1 = torch.nn.L1Loss()(pred[mask], target[mask])  # emg2pose's AngleMAE, in radians
    assert errors.summary()["MAE"] == pytest.approx(math.degrees(l1.item()), rel=1e-6)


def test_bad_shapes_and_nothing_scored_are_errors():
    with pytest.raises(ValueError, match="20 joint angles"):
        angle_errors(torch.zeros(4, 19), torch.zeros(4, 19), torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        angle_errors(torch.zeros(4, 20), torch.zeros(4, 20), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="no scored samples"):
        angle_errors(torch.zeros(4, 20), torch.zeros(4, 20), torch.zeros(4, dtype=torch.bool))
