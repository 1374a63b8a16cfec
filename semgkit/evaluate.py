"""Evaluation: decode a run's model over whole sessions and pool the edits, per user too."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from semgkit.charset import CHARSET
from semgkit.data import WindowedDataset, collate, load_split
from semgkit.decode import collapse
from semgkit.metrics import per_user, pooled_counts, rates
from semgkit.results import atomic_write
from semgkit.runs import TrainConfig, load_run


@dataclass
class EvalResult:
    """Pooled rates, a per-user table and every (session, prediction, target)."""

    overall: dict[str, float]
    per_user: pd.DataFrame
    predictions: pd.DataFrame

    def to_json(self) -> str:
        users = self.per_user.set_index("user").to_dict(orient="index")
        return json.dumps({"overall": self.overall, "per_user": users}, indent=1)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` atomically: a reader never sees half a result."""
        atomic_write(Path(path), self.to_json())


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    paths: list[Path],
    config: TrainConfig,
    max_windows: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> EvalResult:
    """Decode each session window by window (with past/future context) and pool the edits.

    Each window's central frames are concatenated per session and collapsed once, so a
    key that straddles a window edge is not counted twice; the target is every key
    pressed in the tiled part of the session."""
    model.eval()
    device = next(model.parameters()).device
    data = WindowedDataset(
        paths,
        config.samples(config.window_s),
        config.samples(config.past_s),
        config.samples(config.future_s),
    )
    order = list(range(len(data)))
    if max_windows is not None and len(order) > max_windows:
        order = np.random.default_rng(0).choice(order, max_windows, replace=False).tolist()
    hop = model.hop
    lo = config.samples(config.past_s) // hop
    hi = lo + config.samples(config.window_s) // hop
    frames: dict[int, list] = {}
    targets: dict[int, list] = {}
    for b in tqdm(range(0, len(order), batch_size), desc="eval", disable=not progress):
        ids = sorted(order[b : b + batch_size])
        batch = collate([data[i] for i in ids])
        log_probs = model(batch["emg"].to(device), batch["input_lengths"].to(device))
        best = log_probs[:, lo:hi].argmax(-1).cpu()
        for j, i in enumerate(ids):
            frames.setdefault(data.items[i][0], []).append(best[j])
            targets.setdefault(data.items[i][0], []).append(
                batch["targets"][j, : batch["target_lengths"][j]]
            )
    rows = []
    for s in sorted(frames):
        labels = collapse(torch.cat(frames[s]).tolist())
        rows.append({
            "session": data.sessions[s].session_name,
            "user": data.sessions[s].user,
            "prediction": CHARSET.labels_to_text(labels),
            "target": CHARSET.labels_to_text(torch.cat(targets[s]).tolist()),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    preds, truth = table["prediction"].tolist(), table["target"].tolist()
    counts = pooled_counts(preds, truth)
    overall = {**rates(counts), **counts, "sessions": len(table)}
    return EvalResult(overall, per_user(preds, truth, table["user"].tolist()), table)


def evaluate(
    run_or_model: str | Path | nn.Module,
    data_dir: str | Path,
    split: str = "generic",
    part: str = "test",
    config: TrainConfig | None = None,
    progress: bool = False,
) -> EvalResult:
    """A run (or a model with its config) on one part of a split: overall and per user."""
    if isinstance(run_or_model, nn.Module):
        if config is None:
            raise ValueError("evaluate: a bare model needs its TrainConfig (window lengths)")
        model = run_or_model
    else:
        model, config = load_run(run_or_model)
    if part not in ("train", "val", "test"):
        raise ValueError(f"part {part!r}: choose train, val or test")
    paths = getattr(load_split(data_dir, split), part)
    if not paths:
        raise ValueError(f"split {split!r} has no {part} sessions")
    return evaluate_model(model, paths, config, progress=progress)


def add_cli(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", help="evaluate a run; prints JSON (overall and per user)")
    e.add_argument("--data", required=True, help="corpus directory (emg2qwerty layout)")
    e.add_argument("--run", required=True, type=Path, help="run directory")
    e.add_argument("--split", default="generic", help="split name")
    e.add_argument("--part", default="test", choices=["train", "val", "test"])
    e.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    print(evaluate(args.run, args.data, args.split, args.part).to_json())
    return 0
