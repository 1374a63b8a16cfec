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

A :class:`Decoder` says how log-probabilities become text: greedy (the paper's numbers)
or a CTC beam search, with or without a character language model, under semgkit's search
rule or exactly emg2qwerty's (:func:`semgkit.decode.beam_search`).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from semgkit import decode, lm, perturb
from semgkit.atomic import atomic_write
from semgkit.charset import CHARSET
from semgkit.checkpoint import load_checkpoint
from semgkit.data import Session, WindowedDataset, collate, load_split, typed_sessions
from semgkit.format import SAMPLE_RATE
from semgkit.metrics import per_user, pooled_counts, rates
from semgkit.runs import TrainConfig, load_run, run_config


@dataclass(frozen=True)
class Decoder:
    """Greedy decoding, or a CTC prefix beam search of width ``beam`` scored with the
    character LM ``lm``: "none", "default" (:func:`semgkit.lm.default`) or an ARPA file.
    ``min_log_prob`` skips keys below that log-probability on a frame (faster search).
    ``rule``: semgkit's search or exactly emg2qwerty's (see :func:`decode.beam_search`)."""

    kind: str = "greedy"
    beam: int = 50
    lm: str = "none"
    lm_weight: float = 2.0
    insertion_bonus: float = 2.0
    min_log_prob: float | None = None
    rule: str = "semgkit"

    def __post_init__(self) -> None:
        if self.kind not in ("greedy", "beam"):
            raise ValueError(f"decoder {self.kind!r}: choose greedy or beam")
        if self.kind == "greedy" and self.lm != "none":
            raise ValueError(f"lm {self.lm!r}: a language model needs the beam decoder")
        if self.beam < 1:
            raise ValueError(f"beam {self.beam}: must be at least 1")
        if self.rule not in decode.RULES:
            raise ValueError(f"rule {self.rule!r}: choose one of {', '.join(decode.RULES)}")
        if self.rule == "emg2qwerty" and (self.kind == "greedy" or self.min_log_prob is not None):
            raise ValueError("rule 'emg2qwerty': a beam decoder without min_log_prob")
        if self.lm not in ("none", "default") and not Path(self.lm).is_file():
            raise FileNotFoundError(f"lm {self.lm}: no such language model file")

    @property
    def name(self) -> str:
        """A short label: "greedy", "beam 50", "beam 50 + LM", "beam 50 + LM (emg2qwerty)"."""
        if self.kind == "greedy":
            return "greedy"
        lm_name = {"none": "", "default": " + LM"}.get(self.lm, f" + LM {Path(self.lm).name}")
        rule = " (emg2qwerty)" if self.rule == "emg2qwerty" else ""
        return f"beam {self.beam}{lm_name}{rule}"

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
            rule=self.rule,
        )[0]


GREEDY = Decoder()
PROTOCOLS = ("window", "session")
ROW_FIELDS = {
    "session": ("session", "user", "prediction", "target"),
    "window": ("session", "user", "start_s", "prediction", "target"),
}


@functools.cache
def _load_lm(name: str) -> lm.CharLM:
    return lm.default() if name == "default" else lm.CharLM.load(Path(name))


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


def central_frames(model: nn.Module, config: TrainConfig) -> tuple[int, int]:
    """[lo, hi): the frames of a ``past + window + future`` input that belong to the window."""
    window = config.samples(config.window_s)
    if window % model.hop:
        raise ValueError(
            f"window_s={config.window_s} is {window} samples, not a whole number of the "
            f"model's {model.hop}-sample frames"
        )
    lo = config.samples(config.past_s) // model.hop
    return lo, lo + window // model.hop


@torch.no_grad()
def stitched_log_probs(
    model: nn.Module,
    sessions: Sequence[Session],
    config: TrainConfig,
    batch_size: int = 16,
    progress: bool = False,
) -> Iterator[tuple[int, Tensor]]:
    """(index, (ceil(T / hop), classes)) for each whole session of T samples: windows with
    context, stitched; yielded as soon as the session's last window is through the model.

    Each window carries ``past`` samples before it, rounded up to whole frames of the
    model's hop, so that its frames start where one full pass's do (a 1000-sample past
    over a 16-sample hop would leave every frame 8 samples off); fewer near the start,
    with no zeros before the session, as in one full pass; and ``future`` after it (zeros
    past the end). Windows with the same context are batched across sessions: memory is
    ``batch_size`` windows (read lazily) plus the sessions in flight, whatever the
    sessions' lengths."""
    device = next(model.parameters()).device
    window = config.samples(config.window_s)
    past = -(-config.samples(config.past_s) // model.hop) * model.hop  # whole frames
    future = config.samples(config.future_s)
    lo, hi = central_frames(model, config)
    frames = [-(-len(session) // model.hop) for session in sessions]
    jobs = sorted(
        (min(start, past), i, start)
        for i, n in enumerate(frames)
        for start in range(0, n * model.hop, window)
    )  # grouped by context, then in session order
    left = Counter(i for _, i, _ in jobs)  # windows still to come, per session
    pieces: list[dict[int, Tensor]] = [{} for _ in sessions]
    bar = tqdm(total=len(jobs), desc="eval", unit="window", disable=not progress)
    for context, same in itertools.groupby(jobs, key=lambda job: job[0]):
        same = list(same)
        skip = context // model.hop  # a whole number: starts are whole frames
        for b in range(0, len(same), batch_size):
            batch = same[b : b + batch_size]
            x = np.stack([sessions[i].window(s - c, s + window + future) for c, i, s in batch])
            x = torch.from_numpy(x).to(device)
            lengths = torch.full((len(batch),), x.shape[1], dtype=torch.long, device=device)
            out = model(x, lengths)[:, skip : skip + hi - lo].float().cpu()
            bar.update(len(batch))
            for (_, i, s), y in zip(batch, out, strict=True):
                pieces[i][s] = y
                left[i] -= 1
                if left[i] == 0:  # the session is complete: hand it over, let its frames go
                    done, pieces[i] = pieces[i], {}
                    yield i, torch.cat([done[s] for s in sorted(done)])[: frames[i]]
    bar.close()


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
        model, paths, config, progress=progress, decoder=decoder, protocol=protocol,
        perturbation=perturbation,
    )  # fmt: skip


def add_cli(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", help="evaluate a run; prints JSON (overall and per user)")
    e.add_argument("--data", required=True, help="corpus directory (emg2qwerty layout)")
    e.add_argument("--run", required=True, type=Path, help="run directory")
    e.add_argument("--split", default="generic", help="split name")
    e.add_argument("--part", default="test", choices=["train", "val", "test"])
    e.add_argument(
        "--protocol", choices=PROTOCOLS,
        help="window: each window scored alone; session: whole sessions, tail included "
        "(default: session for test, window otherwise, as emg2qwerty)",
    )  # fmt: skip
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
    e.add_argument(
        "--rule", default=None, choices=decode.RULES,
        help="beam: semgkit's search (default) or exactly emg2qwerty's decode_batch",
    )  # fmt: skip
    perturb.add_flags(e)
    e.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if args.decoder == "greedy":
        beam_flags = (args.beam, args.min_log_prob, args.rule)
        if any(f is not None for f in beam_flags) or args.lm not in (None, "none"):
            raise ValueError("--beam, --lm, --min-log-prob and --rule need --decoder beam")
        decoder = GREEDY
    else:
        decoder = Decoder(
            "beam", 50 if args.beam is None else args.beam, args.lm or "default",
            min_log_prob=args.min_log_prob, rule=args.rule or "semgkit",
        )  # fmt: skip
    perturbation = perturb.parse(args.perturb, args.perturb_seed)  # errors before loading
    _warn_if_unfinished(args.run)
    result = evaluate(
        args.run, args.data, args.split, args.part, decoder=decoder, protocol=args.protocol,
        perturbation=perturbation,
    )  # fmt: skip
    if perturbation is None:
        print(result.to_json())
    else:
        payload = json.loads(result.to_json())
        payload["perturbation"] = {"specs": perturbation.specs, "seed": perturbation.seed}
        print(json.dumps(payload, indent=1))
    return 0


def _warn_if_unfinished(run: Path) -> None:
    """A run without ``done.json`` was stopped or is still training: its ``best.pt`` may
    be from its first steps. Evaluating it is allowed (watching a long run is a use), but
    never silently: one line on stderr says so and from which step the weights are."""
    if (run / "done.json").is_file() or not (run / "best.pt").is_file():
        return  # finished, or not a run (load_run names what is missing)
    state = load_checkpoint(run / "best.pt", ("step",))
    steps = run_config(run).steps if (run / "config.json").is_file() else "?"
    print(
        f"semgkit eval: warning: {run} is not a finished run (no done.json): best.pt is from "
        f"step {state['step']} of {steps}; resume it with --resume to finish, or expect "
        "the error rates of a model that has not finished training",
        file=sys.stderr,
    )
