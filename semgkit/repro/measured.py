"""Reading what the book's runs measured: cached run directories and evaluations.

Every function here only reads; a result that is not there yet is an error naming the
step of :mod:`semgkit.repro.schedule` that computes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from semgkit import lm, models
from semgkit.decoders import Decoder
from semgkit.repro.profiles import Profile
from semgkit.repro.recipes import personal_dir, run_dir
from semgkit.runs import TrainConfig, load_run


def read_result(path: Path, compute: str) -> dict[str, Any]:
    """The JSON result at ``path``; if it is missing, an error naming ``compute``, the
    function (dotted path) that writes it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not computed yet; run {compute}")
    return json.loads(path.read_text())


def _read(path: Path, step: str) -> dict[str, Any]:
    return read_result(path, f"semgkit.repro.schedule.{step}")


def trained(P: Profile, configs: list[TrainConfig]) -> list[Path]:
    """The finished run directory of each config."""
    dirs = [run_dir(P, c) for c in configs]
    for d in dirs:
        _read(d / "done.json", "train_many")
    return dirs


def train_seconds(run_dir: Path) -> float:
    return float(_read(run_dir / "done.json", "train_many")["train_seconds"])


def test_eval_path(run_dir: Path, split: str) -> Path:
    """Where a run's greedy evaluation on ``split``'s test sessions is cached."""
    return run_dir / f"eval-{split}-test.json"


def cross_user(P: Profile, run_dir: Path, split: str | None = None) -> dict[str, Any]:
    """Pooled error rates of a run on its split's test sessions: the held-out users'
    (cross-user) or, in the single-user setting, the training user's own."""
    return _read(test_eval_path(run_dir, split or P.corpus.split), "evaluate_tests")


def personalized(P: Profile, run_dir: Path, user: str) -> dict[str, Any]:
    """The generic run fine-tuned on ``user``'s own sessions: that user's test error rates."""
    return _read(personal_dir(P, run_dir, user) / "eval.json", "personalize_many")


def decoder_key(decoder: Decoder) -> str:
    """Names a decoder's cached results: its settings and its LM file's content (the code
    that decodes is already in the key of the run directory the results sit in)."""
    lm_file = {"none": None, "default": lm.DEFAULT_ASSET}.get(decoder.lm, Path(decoder.lm))
    lm_hash = hashlib.sha256(lm_file.read_bytes()).hexdigest() if lm_file else ""
    payload = json.dumps([decoder.settings(), lm_hash], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def decoded_paths(run_dir: Path, split: str, decoders: list[Decoder]) -> list[Path]:
    """Where each decoder's test error rates are cached, beside the greedy evaluation."""
    return [run_dir / f"eval-{split}-test-{decoder_key(d)}.json" for d in decoders]


def decoded(run_dir: Path, split: str, decoders: list[Decoder]) -> list[dict[str, Any]]:
    """``run_dir``'s test error rates under each decoder."""
    return [_read(p, "decode") for p in decoded_paths(run_dir, split, decoders)]


def described(role: str, runs: list[Path], **extra: Any) -> dict[str, Any]:
    """The head of a table row for one model trained once per seed (``runs``): its role,
    preset and parameters, ``extra`` settings, mean training seconds and the seed count."""
    model, config = load_run(runs[0])
    seconds = float(np.mean([train_seconds(r) for r in runs]))
    return {
        "role": role,
        "preset": config.preset,
        "parameters": models.count_params(model),
        **extra,
        "train s": round(seconds, 1),
        "seeds": len(runs),
    }
