"""The optimizer and learning-rate schedule every run trains with: AdamW, linear warmup
then cosine decay to zero."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from semgkit.runs import TrainConfig


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """The rate multiplier at a step: linear warmup over ``warmup_frac``, then cosine."""
    warmup = max(1, int(config.warmup_frac * config.steps))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, config.steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def adamw(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay (decoupled) on matrices and kernels only, not norms and biases."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest}]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=0.0)
