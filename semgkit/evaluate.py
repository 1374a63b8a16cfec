"""Evaluation: decode a run's model over a split's sessions and pool the edits, per user too.

Two protocols, as emg2qwerty scores validation and test:

* ``window``: the session is tiled into windows (with past/future context); each window
  is decoded alone and scored against the keys pressed in it. The tail after the last
  whole window is not scored (emg2qwerty's validation; training's validation here).
* ``session``: each session is decoded as one sequence and scored against the whole
  session's text, tail included (emg2qwerty's test, the paper's reported numbers).
  emg2qwerty feeds the whole session in one pass; a transformer's attention over a
  20-minute session (120,000 frames) does not fit in memory, so here the session is cut
  into windows that each carry the model's past/future context, their central frames
  are stitched in order and the stitched frames decoded once. The first window gets
  the session's own beginning as context, the last reaches past the end (zero-padded);
  windows are batched across sessions; each window's past is rounded up to whole frames
  so that its frames fall where one pass's do. This equals one full pass whenever the
  model's receptive field fits in the past context and nothing normalises over the whole input
  (tds-laptop, a transformer with a short bounded attention; not the paper's `tds`, which
  looks back 2048 samples, more than the paper's 0.9 s past); otherwise each frame
  sees ``past_s + window_s`` of history (the past rounded up to a whole frame), the
  context the model was trained with.

A :class:`semgkit.decoders.Decoder` says how log-probabilities become text: greedy (the paper's numbers)
or a CTC beam search, with or without a character language model, under semgkit's search
rule or exactly emg2qwerty's (:func:`semgkit.decode.beam_search`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from semgkit import perturb
from semgkit.atomic import atomic_write
from semgkit.charset import CHARSET
from semgkit.data import load_split, typed_sessions
from semgkit.decoders import GREEDY, Decoder
from semgkit.format import SAMPLE_RATE
from semgkit.metrics import per_user, pooled_counts, rates
from semgkit.runs import TrainConfig, load_run
from semgkit.stitch import central_frames, stitched_log_probs
from semgkit.windows import WindowedDataset, collate

PROTOCOLS = ("window", "session")
ROW_FIELDS = {
    "session": ("session", "user", "prediction", "target"),
    "window": ("session", "user", "start_s", "prediction", "target"),
}


@dataclass
class EvalResult:
    """Pooled rates, a per-user table and every scored (prediction, target): one row per
    session under the ``session`` protocol, one per window under ``window``."""

    overall: dict[str, float]
    per_user: pd.DataFrame
    predictions: pd.DataFrame
    decoder: dict[str, Any] = field(default_factory=GREEDY.settings)
    decoding: dict[str, float] = field(default_factory=dict)  # cpu_seconds, semg_minutes
    protocol: str = "session"

    def to_json(self) -> str:
        """Valid JSON: a rate with no characters to score (NaN) is written ``null``."""
        users = self.per_user.set_index("user").to_dict(orient="index")
        payload = {"protocol": self.protocol, "overall": self.overall, "per_user": users}
        payload = {**payload, "decoder": self.decoder, "decoding": self.decoding}
        return json.dumps(_null_for_nan(payload), indent=1, allow_nan=False)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` atomically: a reader never sees half a result."""
        atomic_write(Path(path), self.to_json())


def _null_for_nan(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _null_for_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_null_for_nan(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate_model(
    model: nn.Module,
    paths: list[Path],
    config: TrainConfig,
    max_windows: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
    decoder: Decoder = GREEDY,
    protocol: str = "session",
    perturbation: perturb.Perturbation | None = None,
) -> EvalResult:
    """Decode ``paths`` under ``protocol`` (see the module docstring) and pool the edits.

    ``max_windows`` scores a fixed random sample of windows (``window`` protocol only);
    ``perturbation`` is applied to each session's signal before the model sees it."""
    return evaluate_decoders(
        model, paths, config, [decoder], max_windows, batch_size, progress, protocol, perturbation
    )[0]


@torch.no_grad()
def evaluate_decoders(
    model: nn.Module,
    paths: list[Path],
    config: TrainConfig,
    decoders: Sequence[Decoder],
    max_windows: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
    protocol: str = "session",
    perturbation: perturb.Perturbation | None = None,
) -> list[EvalResult]:
    """:func:`evaluate_model` with several decoders over one pass of the model.

    Each result records its decoder's settings and the CPU seconds it took to decode how
    many minutes of sEMG (on one thread)."""
    if not decoders:
        raise ValueError("evaluate_decoders: give at least one decoder")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: choose from {list(PROTOCOLS)}")
    if protocol == "session" and max_windows is not None:
        raise ValueError("max_windows applies to the window protocol only")
    for decoder in decoders:
        decoder.language_model()  # loaded here, not inside the decoding time
    model.eval()
    seconds = [0.0] * len(decoders)
    rows: list[list[dict]] = [[] for _ in decoders]
    frames_decoded = 0
    for row, log_probs in _scored(
        model, paths, config, max_windows, batch_size, progress, protocol, perturbation
    ):
        frames_decoded += len(log_probs)
        for k, decoder in enumerate(decoders):
            start = time.thread_time()  # CPU: contention does not inflate it
            text = decoder(log_probs)
            seconds[k] += time.thread_time() - start
            rows[k].append({**row, "prediction": text})
    minutes = frames_decoded * model.hop / SAMPLE_RATE / 60
    return [
        _result(
            pd.DataFrame(sorted(r, key=_order), columns=ROW_FIELDS[protocol]),
            decoder,
            {"cpu_seconds": round(t, 3), "semg_minutes": round(minutes, 3)},
            protocol,
        )
        for r, decoder, t in zip(rows, decoders, seconds, strict=True)
    ]


def _order(row: dict) -> tuple:
    return row["_index"], row.get("start_s", 0.0)


def _scored(
    model: nn.Module,
    paths: list[Path],
    config: TrainConfig,
    max_windows: int | None,
    batch_size: int,
    progress: bool,
    protocol: str,
    perturbation: perturb.Perturbation | None = None,
) -> Iterator[tuple[dict[str, Any], Tensor]]:
    """(row without its prediction, log-probabilities to decode) per scored unit: a whole
    session (``session``) or one window (``window``), each session perturbed if asked."""
    perturbed = perturbation.session if perturbation else lambda session: session
    if protocol == "session":
        sessions = [perturbed(s) for s in typed_sessions(paths)]
        for i, log_probs in stitched_log_probs(model, sessions, config, batch_size, progress):
            s = sessions[i]
            row = {"_index": i, "session": s.session_name, "user": s.user}
            yield {**row, "target": s.key_events()[1]}, log_probs
        return
    device = next(model.parameters()).device
    data = WindowedDataset(
        paths,
        config.samples(config.window_s),
        config.samples(config.past_s),
        config.samples(config.future_s),
    )
    data.sessions = [perturbed(s) for s in data.sessions]
    order = list(range(len(data)))
    if max_windows is not None and len(order) > max_windows:
        order = np.random.default_rng(0).choice(order, max_windows, replace=False).tolist()
    lo, hi = central_frames(model, config)
    for b in tqdm(range(0, len(order), batch_size), desc="eval", disable=not progress):
        ids = sorted(order[b : b + batch_size])
        batch = collate([data[i] for i in ids])
        log_probs = model(batch["emg"].to(device), batch["input_lengths"].to(device))
        central = log_probs[:, lo:hi].float().cpu()
        for j, i in enumerate(ids):
            s, start = data.items[i]
            target = batch["targets"][j, : batch["target_lengths"][j]]
            row = {
                "_index": s,
                "session": data.sessions[s].session_name,
                "user": data.sessions[s].user,
                "start_s": start / SAMPLE_RATE,
                "target": CHARSET.labels_to_text(target.tolist()),
            }
            yield row, central[j]


def _result(
    table: pd.DataFrame, decoder: Decoder, decoding: dict[str, float], protocol: str
) -> EvalResult:
    preds, truth = table["prediction"].tolist(), table["target"].tolist()
    counts = pooled_counts(preds, truth)
    overall = {**rates(counts), **counts, "sessions": table["session"].nunique()}
    if protocol == "window":
        overall["windows"] = len(table)
    users = per_user(preds, truth, table["user"].tolist())
    return EvalResult(overall, users, table, decoder.settings(), decoding, protocol)


def model_and_paths(
    run_or_model: str | Path | nn.Module,
    data_dir: str | Path,
    split: str = "generic",
    part: str = "test",
    config: TrainConfig | None = None,
) -> tuple[nn.Module, list[Path], TrainConfig]:
    """A run's model (or a bare model with its config) and the sessions of one part of a split."""
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
    return model, paths, config


def evaluate(
    run_or_model: str | Path | nn.Module,
    data_dir: str | Path,
    split: str = "generic",
    part: str = "test",
    config: TrainConfig | None = None,
    progress: bool = False,
    decoder: Decoder = GREEDY,
    protocol: str | None = None,
    perturbation: perturb.Perturbation | None = None,
) -> EvalResult:
    """A run (or a model with its config) on one part of a split: overall and per user.

    ``protocol`` defaults to emg2qwerty's: ``session`` for test, ``window`` otherwise."""
    model, paths, config = model_and_paths(run_or_model, data_dir, split, part, config)
    protocol = protocol or ("session" if part == "test" else "window")
    return evaluate_model(
        model,
        paths,
        config,
        progress=progress,
        decoder=decoder,
        protocol=protocol,
        perturbation=perturbation,
    )
