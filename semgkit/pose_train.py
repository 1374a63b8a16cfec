"""The pose task in the one training engine: its windows, loss and validation.

:func:`semgkit.train.fit` trains a pose run when the run's model has the ``pose`` head
(``TrainConfig.model = POSE``): the same run directories, checkpoints, resume, schedule
and optimizer as a CTC run, on :class:`semgkit.pose.PoseWindows` of an emg2pose split.

Frames and targets: frame i of a causal encoder has seen the samples before
``(i + 1) * hop``, so its target is the pose at sample ``(i + 1) * hop - 1`` and it is
scored where that sample has no IK failure. (emg2pose instead upsamples its predictions
linearly to 2 kHz and scores every sample; at 100 frames a second the two differ only by
the pose's movement within 10 ms.) The loss is emg2pose's: the mean absolute error over
the scored (frame, joint) pairs, in radians.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from semgkit.augment import BandRotation
from semgkit.losses import masked_l1
from semgkit.pose import PoseSplit, PoseWindows, load_pose_split, pose_collate
from semgkit.pose_format import NUM_JOINTS
from semgkit.pose_metrics import PoseErrors
from semgkit.runs import TrainConfig, load_run

POSE = {"head": "pose", "num_classes": NUM_JOINTS}  # TrainConfig.model for a pose run


def is_pose(resolved: object) -> bool:
    """Whether a resolved model config (transformer or TDS) has the pose head."""
    return getattr(resolved, "head", "ctc") == "pose"


def at_frames(batch: dict[str, Tensor], frames: int, hop: int) -> tuple[Tensor, Tensor]:
    """(B, frames, 20) target angles and (B, frames) mask at each frame's last sample."""
    index = torch.arange(frames, device=batch["angles"].device) * hop + hop - 1
    return batch["angles"][:, index], batch["mask"][:, index]


def pose_objective(model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
    pred = model(batch["emg"], batch["input_lengths"])
    target, mask = at_frames(batch, pred.shape[1], model.hop)
    return masked_l1(pred, target, mask), {}


def pose_windows(config: TrainConfig, paths: Sequence[Path], train: bool) -> PoseWindows:
    """A run's training windows (emg2pose's rotation augmentation when ``augment``), or
    evaluation tiles of its window length, both inside IK-free runs as emg2pose's are."""
    return PoseWindows(
        paths,
        config.samples(config.window_s),
        config.samples(config.past_s),
        config.samples(config.future_s),
        train=train,
        transform=BandRotation() if train and config.augment else None,
        seed=config.order_seed(),
    )


@torch.no_grad()
def evaluate_pose(
    model: nn.Module,
    paths: Sequence[Path],
    config: TrainConfig,
    max_windows: int | None = None,
    batch_size: int = 16,
    by: str = "user",
) -> dict[str, dict[str, float]]:
    """Angle errors (degrees) of ``model`` on the tiles of ``paths``: ``overall`` and per
    user (``by="user"``) or per stage file (``by="stage"``: one user's stages, as in
    emg2pose's mini split). ``max_windows`` scores a fixed random sample of the tiles."""
    if by not in ("user", "stage"):
        raise ValueError(f"evaluate_pose: by={by!r}, choose 'user' or 'stage'")
    windows = pose_windows(config, paths, train=False)
    items = np.arange(len(windows))
    if max_windows is not None and max_windows < len(items):
        items = np.sort(np.random.default_rng(0).choice(items, max_windows, replace=False))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    overall, users = PoseErrors(), {}
    for lo in range(0, len(items), batch_size):
        chunk = items[lo : lo + batch_size]
        batch = pose_collate([windows[int(i)] for i in chunk])
        pred = model(batch["emg"].to(device), batch["input_lengths"].to(device)).float().cpu()
        target, mask = at_frames(batch, pred.shape[1], model.hop)
        overall.add(pred, target, mask)
        for row, i in enumerate(chunk):
            key = windows.user(int(i)) if by == "user" else windows.stage(int(i))
            user = users.setdefault(key, PoseErrors())
            user.add(pred[row], target[row], mask[row])
    model.train(was_training)
    scored = {u: e.summary() for u, e in sorted(users.items()) if e.count}
    return {"overall": overall.summary(), **scored}


def evaluate_pose_run(
    run_dir: str | Path, data_dir: str | Path, split: str, part: str = "test", by: str = "user"
) -> dict[str, dict[str, float]]:
    """:func:`evaluate_pose` of a finished run's best weights on one part of a pose split."""
    model, config = load_run(run_dir)
    paths: PoseSplit = load_pose_split(data_dir, split)
    return evaluate_pose(model, getattr(paths, part), config, by=by)
