"""One engine for every model in the book: CTC (or distillation) training and evaluation.

A run is a directory: ``config.json`` (the full resolved TrainConfig), ``metrics.jsonl``,
``last.pt`` and ``best.pt``. The data a step sees is a pure function of (seed, step), and
checkpoints carry model, optimizer, scheduler and RNG states, so a run killed at any
point and resumed from its last checkpoint ends with the same weights as one never
interrupted. Under ``torchrun`` the same code trains with DistributedDataParallel: each
process takes its share of every global batch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from semgkit import models
from semgkit.augment import paper_augmentation
from semgkit.charset import CHARSET
from semgkit.data import WindowedDataset, collate, load_split
from semgkit.decode import collapse
from semgkit.distill import DistillObjective, ctc_loss
from semgkit.metrics import per_user, pooled_counts, rates

SAMPLE_RATE = 2000


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. Defaults are the paper's recipe (PAPER.md)."""

    data_dir: str
    split: str = "generic"
    preset: str = "tiny"
    model: dict = field(default_factory=dict)  # overrides of the preset's fields
    steps: int = 1000
    batch_size: int = 32  # global: split over processes and accumulation micro-steps
    accumulate: int = 1
    lr: float = 5e-4
    weight_decay: float = 0.2
    warmup_frac: float = 0.05
    grad_clip: float = 0.1
    window_s: float = 4.0
    past_s: float = 0.9
    future_s: float = 0.1
    augment: bool = True
    seed: int = 0
    num_threads: int = 0  # 0: leave torch's default
    checkpoint_every: int = 0  # 0: only at the end
    val_every: int = 0  # 0: only at the end
    val_windows: int = 64
    init: str = ""  # a run directory whose weights start this run (personalization)
    teacher: str = ""  # a run directory: distil from it (semgkit.distill)
    temperature: float = 2.0
    alpha: float = 0.5
    teacher_cache: bool | str = False

    def samples(self, seconds: float) -> int:
        return int(round(seconds * SAMPLE_RATE))


def ctc_objective(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    log_probs = model(batch["emg"], batch["input_lengths"])
    loss = ctc_loss(log_probs, model.output_lengths(batch["input_lengths"]), batch)
    return loss, {}


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def _trim_log(path: Path, step: int) -> None:
    """Keep the metrics rows up to a resumed checkpoint's step: a killed run may have
    logged later steps (the resumed run logs them again) and torn its last line."""
    keep = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # torn by the kill: nothing was written after it
        if row["step"] > step:
            break
        keep.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)


def _check_inputs(config: TrainConfig) -> None:
    load_split(config.data_dir, config.split)  # raises with the missing path named
    models.resolve(config.preset, **config.model)
    for name in ("init", "teacher"):
        run = getattr(config, name)
        if run and not (Path(run) / "config.json").is_file():
            raise FileNotFoundError(f"--{name} {run}: not a run directory (no config.json)")


def build_model(config: TrainConfig) -> nn.Module:
    return models.build(config.preset, **config.model)


def _lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    warmup = max(1, int(config.warmup_frac * config.steps))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, config.steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay (decoupled) on matrices and kernels only, not norms and biases."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest}]
    return torch.optim.AdamW(groups, lr=config.lr, weight_decay=0.0)


def batch_indices(step: int, size: int, n: int, seed: int) -> tuple[int, list[int]]:
    """(epoch, dataset indices) of global batch ``step``: a pure function of its inputs."""
    start = step * size
    epoch = start // n
    out = []
    while len(out) < size:
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        offset = start - epoch * n if not out else 0
        out += perm[offset : offset + size - len(out)].tolist()
        epoch += 1 if len(out) < size else 0
    return start // n, out


def _load_weights(model: nn.Module, path: Path, config: TrainConfig) -> None:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("charset") != CHARSET.chars:
        raise ValueError(f"{path}: checkpoint was trained with another character set")
    saved = models.resolve(state["model_config"])
    if saved != models.resolve(config.preset, **config.model):
        raise ValueError(
            f"{path}: checkpoint is a {state['preset']!r} model, not {config.preset!r} "
            "with these model settings"
        )
    model.load_state_dict(state["model"])


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train ``config`` into ``out_dir`` (a run directory); returns it.

    ``resume`` continues from ``last.pt``; the run directory's config must match.
    ``on_step(step)`` is called after every optimizer step (tests use it to kill a run)."""
    out = Path(out_dir)
    start = time.perf_counter()
    rank, world = _distributed()
    _check_inputs(config)
    if config.batch_size % (world * config.accumulate):
        raise ValueError(
            f"batch_size {config.batch_size} must divide by processes x accumulate "
            f"({world} x {config.accumulate})"
        )
    saved_config = out / "config.json"
    if resume:
        if not (out / "last.pt").is_file():
            raise FileNotFoundError(f"--resume: {out / 'last.pt'} does not exist")
        if json.loads(saved_config.read_text()) != json.loads(json.dumps(asdict(config))):
            raise ValueError(f"--resume: {saved_config} holds a different config than this run")
    elif out.exists() and any(out.iterdir()):
        raise FileExistsError(f"run directory {out} is not empty; pass --resume to continue it")
    if world > 1:
        dist.barrier()  # every rank has checked the run directory before rank 0 writes to it
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    device = _device()

    model = build_model(config).to(device)
    if config.init and not resume:
        _load_weights(model, Path(config.init) / "best.pt", config)
    objective = DistillObjective(config) if config.teacher else ctc_objective
    optimizer = _optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    split = load_split(config.data_dir, config.split)
    train_set = WindowedDataset(
        split.train,
        config.samples(config.window_s),
        config.samples(config.past_s),
        config.samples(config.future_s),
        train=True,
        transform=paper_augmentation() if config.augment else None,
        seed=config.seed,
    )
    step, best = 0, float("inf")
    if resume:
        state = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        step, best = state["step"], state["best_cer"]
        if rank == 0:
            _trim_log(out / "metrics.jsonl", step)
    elif rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(saved_config, asdict(config))
    net = model
    if world > 1:
        # some parameters sit out whole runs (the time-mask embedding when masking is off)
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        net.output_lengths, net.hop = model.output_lengths, model.hop

    def checkpoint(name: str) -> None:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "best_cer": best,
            "preset": config.preset,
            "model_config": models.config_dict(models.resolve(config.preset, **config.model)),
            "charset": CHARSET.chars,
        }
        _save_atomic(state, out / name)

    log = (out / "metrics.jsonl").open("a") if rank == 0 else None
    bar = tqdm(total=config.steps, initial=step, desc=f"train {config.preset}",
               disable=not progress or rank != 0)  # fmt: skip
    micro = config.batch_size // (world * config.accumulate)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    while step < config.steps:
        tic = time.perf_counter()
        model.train()
        epoch, idx = batch_indices(step, config.batch_size, len(train_set), config.seed)
        train_set.set_epoch(epoch)
        mine = idx[rank::world]
        optimizer.zero_grad(set_to_none=True)
        total, stats = 0.0, {}
        for k in range(config.accumulate):
            batch = collate([train_set[i] for i in mine[k * micro : (k + 1) * micro]])
            batch = {key: v.to(device) for key, v in batch.items()}
            with autocast:
                loss, stats = objective(net, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {loss.item()} at step {step + 1}; stopped, the last good "
                    f"checkpoint {out / 'last.pt'} is kept"
                )
            (loss / config.accumulate).backward()
            total += float(loss.detach()) / config.accumulate
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        lr = scheduler.get_last_lr()[0]  # the rate this step used
        optimizer.step()
        scheduler.step()
        step += 1
        rate = config.batch_size / (time.perf_counter() - tic)
        bar.update(1)
        bar.set_postfix(loss=f"{total:.3f}", lr=f"{lr:.1e}", win_s=f"{rate:.0f}")
        if log:
            row = {"step": step, "loss": total, "lr": lr, "windows_per_s": rate, **stats}
            log.write(json.dumps(row) + "\n")
        validate = step == config.steps or (config.val_every and step % config.val_every == 0)
        if validate and rank == 0 and split.val:
            cer = evaluate_model(model, split.val, config, max_windows=config.val_windows)
            cer = cer.overall["CER"]
            log.write(json.dumps({"step": step, "val_cer": cer}) + "\n")
            if cer < best:
                best = cer
                checkpoint("best.pt")
        ending = step == config.steps
        if rank == 0 and (
            ending or (config.checkpoint_every and step % config.checkpoint_every == 0)
        ):
            if not (out / "best.pt").exists() and ending:
                checkpoint("best.pt")
            log.flush()
            checkpoint("last.pt")
        if on_step:
            on_step(step)
    bar.close()
    if log:
        log.close()
    if rank == 0:  # marks the run finished (the book's cache looks for it)
        _write_json(out / "done.json", {"train_seconds": time.perf_counter() - start})
    if world > 1:
        dist.barrier()
    return out


def load_run(run_dir: str | Path, which: str = "best") -> tuple[nn.Module, TrainConfig]:
    """A trained run's model (eval mode) and its TrainConfig."""
    run = Path(run_dir)
    path = run / f"{which}.pt"
    if not (run / "config.json").is_file() or not path.is_file():
        raise FileNotFoundError(f"{run}: not a finished run (needs config.json and {path.name})")
    raw = json.loads((run / "config.json").read_text())
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in raw.items() if k in known})
    model = build_model(config)
    _load_weights(model, path, config)
    return model.eval(), config


@dataclass
class EvalResult:
    """Pooled rates, a per-user table and every (session, prediction, target)."""

    overall: dict[str, float]
    per_user: pd.DataFrame
    predictions: pd.DataFrame

    def to_json(self) -> str:
        users = self.per_user.set_index("user").to_dict(orient="index")
        return json.dumps({"overall": self.overall, "per_user": users}, indent=1)


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


def fit_or_resume(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> Path:
    """Train into ``out_dir`` to the end, resuming from ``last.pt`` when a checkpoint exists.

    A run killed before its first checkpoint holds nothing worth keeping; it starts over.
    ``done.json`` (written by ``fit``) marks a finished run and records its training time."""
    out = Path(out_dir)
    if (out / "done.json").is_file():
        return out
    if out.is_dir() and not (out / "last.pt").is_file():
        shutil.rmtree(out)
    return fit(config, out, resume=(out / "last.pt").is_file(), progress=progress)


def personalize(
    generic_run: str | Path,
    data_dir: str | Path,
    split: str,
    out_dir: str | Path,
    steps: int,
    lr: float,
    progress: bool = True,
) -> tuple[Path, EvalResult]:
    """Fine-tune a generic run on one user's personal split; evaluate on its test part."""
    _, generic = load_run(generic_run)
    config = replace(
        generic, data_dir=str(data_dir), split=split, init=str(generic_run), steps=steps, lr=lr,
        teacher="", checkpoint_every=0, val_every=0,
    )  # fmt: skip
    out = Path(out_dir)
    if not (out / "done.json").is_file():
        fit_or_resume(config, out, progress=progress)
    return out, evaluate(out, data_dir, split, "test")


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a model preset with CTC")
    p.add_argument(
        "--config", type=Path, default=None,
        help="a TrainConfig as JSON (a run's config.json, or one from `tools/book.py plan`); "
        "the flags below override its fields",
    )  # fmt: skip
    p.add_argument("--data", default=None, help="corpus directory (emg2qwerty layout)")
    p.add_argument("--split", default=None, help="split name: DATA/splits/NAME.yaml (generic)")
    p.add_argument("--preset", default=None, help=f"model preset: {sorted(models.PRESETS)}")
    p.add_argument("--out", required=True, type=Path, help="run directory")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=None, help="global batch size")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--window-s", type=float, default=None, help="window length, seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint period, steps")
    p.add_argument("--resume", action="store_true", help="continue OUT from last.pt")
    p.set_defaults(func=_train_cli)
    e = subparsers.add_parser("eval", help="evaluate a run; prints JSON (overall and per user)")
    e.add_argument("--data", required=True, help="corpus directory (emg2qwerty layout)")
    e.add_argument("--run", required=True, type=Path, help="run directory")
    e.add_argument("--split", default="generic", help="split name")
    e.add_argument("--part", default="test", choices=["train", "val", "test"])
    e.set_defaults(func=_eval_cli)


def config_from_json(path: str | Path) -> TrainConfig:
    """A TrainConfig saved as JSON; unknown fields are an error naming them."""
    raw = json.loads(Path(path).read_text())
    unknown = sorted(set(raw) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise ValueError(f"{path}: unknown TrainConfig field(s) {unknown}")
    return TrainConfig(**raw)


def _train_cli(args: argparse.Namespace) -> int:
    flags = {
        "data_dir": args.data, "split": args.split, "preset": args.preset,
        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "window_s": args.window_s, "seed": args.seed, "checkpoint_every": args.checkpoint_every,
    }  # fmt: skip
    overrides = {k: v for k, v in flags.items() if v is not None}
    if args.config:
        config = replace(config_from_json(args.config), **overrides)
    elif args.data is None or args.preset is None:
        raise ValueError("semgkit train: pass --config FILE, or --data and --preset")
    else:
        config = TrainConfig(**overrides)
    if not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f"--data {config.data_dir}: no such directory")
    print(fit(config, args.out, resume=args.resume))
    return 0


def _eval_cli(args: argparse.Namespace) -> int:
    print(evaluate(args.run, args.data, args.split, args.part).to_json())
    return 0
