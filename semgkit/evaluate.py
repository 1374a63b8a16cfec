"""Evaluation: decode a run's model over whole sessions and pool the edits, per user too.

A :class:`Decoder` says how a session's log-probabilities become text: greedy (the
paper's numbers) or a CTC beam search, with or without a character language model."""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from semgkit import decode, lm
from semgkit.charset import CHARSET
from semgkit.data import Session, WindowedDataset, collate, load_split
from semgkit.format import SAMPLE_RATE
from semgkit.metrics import per_user, pooled_counts, rates
from semgkit.results import atomic_write
from semgkit.runs import TrainConfig, load_run


@dataclass(frozen=True)
class Decoder:
    """Greedy decoding, or a CTC prefix beam search of width ``beam`` scored with the
    character LM ``lm``: "none", "default" (:func:`semgkit.lm.default`) or an ARPA file.
    ``min_log_prob`` skips keys below that log-probability on a frame (faster search)."""

    kind: str = "greedy"
    beam: int = 50
    lm: str = "none"
    lm_weight: float = 2.0
    insertion_bonus: float = 2.0
    min_log_prob: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "beam"):
            raise ValueError(f"decoder {self.kind!r}: choose greedy or beam")
        if self.kind == "greedy" and self.lm != "none":
            raise ValueError(f"lm {self.lm!r}: a language model needs the beam decoder")
        if self.beam < 1:
            raise ValueError(f"beam {self.beam}: must be at least 1")
        if self.lm not in ("none", "default") and not Path(self.lm).is_file():
            raise FileNotFoundError(f"lm {self.lm}: no such language model file")

    @property
    def name(self) -> str:
        """A short label: "greedy", "beam 50", "beam 50 + LM"."""
        if self.kind == "greedy":
            return "greedy"
        lm_name = {"none": "", "default": " + LM"}.get(self.lm, f" + LM {Path(self.lm).name}")
        return f"beam {self.beam}{lm_name}"

    def settings(self) -> dict[str, Any]:
        """What a result records about its decoder (the beam settings only for beam)."""
        return {"kind": "greedy"} if self.kind == "greedy" else asdict(self)

    def language_model(self) -> lm.CharLM | None:
        """The LM, loaded once per process (a few seconds for the default)."""
        return None if self.lm == "none" else _load_lm(self.lm)

    def __call__(self, log_probs: Tensor) -> str:
        """(frames, classes) log-probabilities of one session -> its text."""
        if self.kind == "greedy":
            return decode.greedy(log_probs[None])[0]
        return decode.beam_search(
            log_probs[None],
            beam=self.beam,
            lm=self.language_model(),
            lm_weight=self.lm_weight,
            insertion_bonus=self.insertion_bonus,
            min_log_prob=self.min_log_prob,
        )[0]


GREEDY = Decoder()
ROW_FIELDS = ("session", "user", "prediction", "target")


@functools.cache
def _load_lm(name: str) -> lm.CharLM:
    return lm.default() if name == "default" else lm.CharLM.load(Path(name))


@dataclass
class EvalResult:
    """Pooled rates, a per-user table and every (session, prediction, target)."""

    overall: dict[str, float]
    per_user: pd.DataFrame
    predictions: pd.DataFrame
    decoder: dict[str, Any] = field(default_factory=GREEDY.settings)
    decoding: dict[str, float] = field(default_factory=dict)  # cpu_seconds, semg_minutes

    def to_json(self) -> str:
        users = self.per_user.set_index("user").to_dict(orient="index")
        payload = {"overall": self.overall, "per_user": users, "decoder": self.decoder}
        return json.dumps({**payload, "decoding": self.decoding}, indent=1)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` atomically: a reader never sees half a result."""
        atomic_write(Path(path), self.to_json())


@torch.no_grad()
def session_log_probs(
    model: nn.Module,
    data: WindowedDataset,
    frames: slice,
    ids: list[int] | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> Iterator[tuple[Session, Tensor, Tensor]]:
    """(session, log-probabilities of its windows' ``frames`` concatenated (T, C) on the
    CPU, labels of those windows) for one session after another, windows in time order.

    ``ids`` picks windows of ``data`` (default all). Only one session's windows and
    outputs are held at a time, so memory does not grow with the number of sessions."""
    model.eval()
    device = next(model.parameters()).device
    by_session: dict[int, list[int]] = {}
    for i in sorted(range(len(data)) if ids is None else ids):
        by_session.setdefault(data.items[i][0], []).append(i)
    bar = tqdm(total=sum(map(len, by_session.values())), desc="eval", disable=not progress)
    for s, windows in by_session.items():
        outputs, targets = [], []
        for b in range(0, len(windows), batch_size):
            batch = collate([data[i] for i in windows[b : b + batch_size]])
            log_probs = model(batch["emg"].to(device), batch["input_lengths"].to(device))
            outputs.append(log_probs[:, frames].float().cpu().flatten(0, 1))
            lengths = batch["target_lengths"]
            targets += [t[:n] for t, n in zip(batch["targets"], lengths, strict=True)]
            bar.update(len(batch["emg"]))
        yield data.sessions[s], torch.cat(outputs), torch.cat(targets)
    bar.close()


def evaluate_model(
    model: nn.Module,
    paths: list[Path],
    config: TrainConfig,
    max_windows: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
    decoder: Decoder = GREEDY,
) -> EvalResult:
    """Decode each session window by window (with past/future context) and pool the edits.

    Each window's central frames are concatenated per session and decoded once, so a
    key that straddles a window edge is not counted twice; the target is every key
    pressed in the tiled part of the session."""
    return evaluate_decoders(model, paths, config, [decoder], max_windows, batch_size, progress)[0]


@torch.no_grad()
def evaluate_decoders(
    model: nn.Module,
    paths: list[Path],
    config: TrainConfig,
    decoders: Sequence[Decoder],
    max_windows: int | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> list[EvalResult]:
    """:func:`evaluate_model` with several decoders over one pass of the model.

    Sessions go through the model one at a time (:func:`session_log_probs`), so memory
    holds one session's frames. Each result records its decoder's settings and the CPU
    seconds it took to decode how many minutes of sEMG (on one thread)."""
    if not decoders:
        raise ValueError("evaluate_decoders: give at least one decoder")
    for decoder in decoders:
        decoder.language_model()  # loaded here, not inside the decoding time
    data = WindowedDataset(
        paths,
        config.samples(config.window_s),
        config.samples(config.past_s),
        config.samples(config.future_s),
    )
    ids = None
    if max_windows is not None and len(data) > max_windows:
        ids = np.random.default_rng(0).choice(len(data), max_windows, replace=False).tolist()
    lo = config.samples(config.past_s) // model.hop
    central = slice(lo, lo + config.samples(config.window_s) // model.hop)
    rows: list[list[dict]] = [[] for _ in decoders]
    seconds, frames_decoded = [0.0] * len(decoders), 0
    for session, frames, labels in session_log_probs(
        model, data, central, ids, batch_size, progress
    ):
        target = CHARSET.labels_to_text(labels.tolist())
        frames_decoded += len(frames)
        for k, decoder in enumerate(decoders):
            start = time.thread_time()  # CPU: contention does not inflate it
            text = decoder(frames)
            seconds[k] += time.thread_time() - start
            rows[k].append({
                "session": session.session_name, "user": session.user,
                "prediction": text, "target": target,
            })  # fmt: skip
    minutes = frames_decoded * model.hop / SAMPLE_RATE / 60
    return [
        _result(
            pd.DataFrame(r, columns=ROW_FIELDS),
            decoder,
            {"cpu_seconds": round(t, 3), "semg_minutes": round(minutes, 3)},
        )
        for r, decoder, t in zip(rows, decoders, seconds, strict=True)
    ]


def _result(table: pd.DataFrame, decoder: Decoder, decoding: dict[str, float]) -> EvalResult:
    preds, truth = table["prediction"].tolist(), table["target"].tolist()
    counts = pooled_counts(preds, truth)
    overall = {**rates(counts), **counts, "sessions": len(table)}
    users = per_user(preds, truth, table["user"].tolist())
    return EvalResult(overall, users, table, decoder.settings(), decoding)


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
) -> EvalResult:
    """A run (or a model with its config) on one part of a split: overall and per user."""
    model, paths, config = model_and_paths(run_or_model, data_dir, split, part, config)
    return evaluate_model(model, paths, config, progress=progress, decoder=decoder)


def add_cli(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", help="evaluate a run; prints JSON (overall and per user)")
    e.add_argument("--data", required=True, help="corpus directory (emg2qwerty layout)")
    e.add_argument("--run", required=True, type=Path, help="run directory")
    e.add_argument("--split", default="generic", help="split name")
    e.add_argument("--part", default="test", choices=["train", "val", "test"])
    e.add_argument(
        "--decoder", default="greedy", choices=["greedy", "beam"],
        help="greedy (best class per frame; the paper's numbers) or CTC beam search",
    )  # fmt: skip
    e.add_argument("--beam", type=int, default=None, help="beam width (default 50)")
    e.add_argument(
        "--lm", default=None,
        help="character LM for --decoder beam: an ARPA file, 'default' (the shipped English "
        "6-gram; the default for beam) or 'none'",
    )  # fmt: skip
    e.add_argument(
        "--min-log-prob", type=float, default=None,
        help="beam: skip keys below this log-probability on a frame (faster)",
    )  # fmt: skip
    e.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if args.decoder == "greedy":
        if args.beam is not None or args.lm not in (None, "none") or args.min_log_prob is not None:
            raise ValueError("--beam, --lm and --min-log-prob need --decoder beam")
        decoder = GREEDY
    else:
        decoder = Decoder(
            "beam", 50 if args.beam is None else args.beam, args.lm or "default",
            min_log_prob=args.min_log_prob,
        )  # fmt: skip
    print(evaluate(args.run, args.data, args.split, args.part, decoder=decoder).to_json())
    return 0
