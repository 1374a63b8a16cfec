"""Training: one engine for every model in the book, CTC or distillation.

The data a step sees is a pure function of (seed, step), and checkpoints carry model,
optimizer, scheduler and RNG states, so a run killed at any point and resumed from its
last checkpoint ends with the same weights as one never interrupted. Under ``torchrun``
the same code trains with DistributedDataParallel: each process takes its share of every
global batch. Run directories and checkpoints are :mod:`semgkit.runs`; evaluation is
:mod:`semgkit.evaluate`; the ``train`` and ``distill`` commands are :mod:`semgkit.train_cli`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from semgkit import models
from semgkit.augment import paper_augmentation
from semgkit.checkpoint import TRAINING_KEYS, WEIGHT_KEYS
from semgkit.distill import DistillObjective
from semgkit.evaluate import EvalResult, evaluate, evaluate_model
from semgkit.loader import StepBatches, auto_workers, train_loader
from semgkit.losses import ctc_loss
from semgkit.optim import adamw, lr_lambda
from semgkit.pose import pose_collate
from semgkit.pose_train import evaluate_pose, is_pose, pose_objective, pose_windows
from semgkit.runs import (
    CHECKPOINT_S,
    TrainConfig,
    check_config,
    checkpoint_state,
    load_weights,
    model_config,
    open_run,
    run_config,
    save_atomic,
    trim_log,
    write_json,
)
from semgkit.stopping import Every, Interrupted, StopOnInterrupt
from semgkit.train_checks import (
    check_evaluable,
    check_frame_rates,
    check_inputs,
    out_of_memory,
    run_split,
)
from semgkit.windows import WindowedDataset, collate


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


def _next_batch(batches: Iterator[dict], step: int, out: Path) -> dict[str, torch.Tensor]:
    """The loader's next batch; a session file that fails under a run (deleted, truncated,
    unreadable) stops it with one line naming the file, not a worker's traceback."""
    try:
        return next(batches)
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[-1].removeprefix(f"{type(err).__name__}: ")
        last = out / "last.pt"
        kept = f"{last} is kept (resume with --resume)" if last.is_file() else "none written yet"
        raise type(err)(
            f"{reason}; training stopped at step {step + 1}, last checkpoint: {kept}"
        ) from err


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    checkpoint_s: float = CHECKPOINT_S,
) -> Path:
    """Train ``config`` into ``out_dir`` (a run directory); returns it.

    ``resume`` continues from ``last.pt``; the run directory's config must match. Without
    a checkpoint there is nothing to continue and the run starts over. Besides every
    ``config.checkpoint_every`` steps, ``last.pt`` is written every ``checkpoint_s``
    seconds, and on Ctrl-C or SIGTERM (then :class:`semgkit.stopping.Interrupted` is raised).
    ``on_step(step)`` is called after every optimizer step (tests use it to kill a run)."""
    out = Path(out_dir)
    rank, world = _distributed()
    check_config(config)
    resolved = model_config(config)  # raises on an unknown preset or field
    check_inputs(config, resolved)
    if config.batch_size % (world * config.accumulate):
        raise ValueError(
            f"batch_size {config.batch_size} must divide by processes x accumulate "
            f"({world} x {config.accumulate})"
        )
    if config.teacher:
        check_frame_rates(config, resolved)
    # Always set, to the default when the config leaves it: only an explicit count turns
    # MKL's dynamic threading off, which can change how a product is split (and rounded)
    # with the machine's load, and a resumed run must repeat every rounding of the first.
    torch.set_num_threads(config.num_threads or torch.get_num_threads())
    torch.manual_seed(config.seed)
    model = models.build(resolved)  # built (and the init and teacher runs read) before any write
    check_evaluable(config, resolved, model)
    if config.init:
        load_weights(model, Path(config.init) / "best.pt", config, resolved)
    objective = pose_objective if is_pose(resolved) else ctc_objective
    if config.teacher:
        objective = DistillObjective(config)
    owned = open_run(out, config, resume) if rank == 0 else contextlib.nullcontext(None)
    with owned as resume_here, StopOnInterrupt() as stop, contextlib.ExitStack() as closing:
        if world > 1:  # rank 0 has checked and prepared the run directory
            dist.barrier()
        resume = resume_here if rank == 0 else (out / "last.pt").is_file()
        return _fit(
            config,
            out,
            resume,
            progress,
            on_step,
            checkpoint_s,
            stop,
            closing,
            resolved,
            model,
            objective,
        )


def _fit(
    config: TrainConfig,
    out: Path,
    resume: bool,
    progress: bool,
    on_step: Callable[[int], None] | None,
    checkpoint_s: float,
    stop: StopOnInterrupt,
    closing: contextlib.ExitStack,
    resolved: Any,
    model: nn.Module,
    objective: Callable,
) -> Path:
    start = time.perf_counter()
    rank, world = _distributed()
    device = _device()
    model = model.to(device)
    optimizer = adamw(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    pose = is_pose(resolved)
    split = run_split(config, resolved)
    if pose:
        train_set = pose_windows(config, split.train, train=True)
    else:
        train_set = WindowedDataset(
            split.train,
            config.samples(config.window_s),
            config.samples(config.past_s),
            config.samples(config.future_s),
            train=True,
            transform=paper_augmentation() if config.augment else None,
            seed=config.order_seed(),
        )
    step, best = 0, float("inf")
    cuda = device.type == "cuda"
    if resume:
        last = out / "last.pt"
        state = load_weights(model, last, config, resolved, WEIGHT_KEYS + TRAINING_KEYS)
        try:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if cuda and state.get("cuda_rng") is not None:  # dropout and masks on a GPU
                torch.cuda.set_rng_state(state["cuda_rng"], device)
        except (ValueError, KeyError, TypeError, RuntimeError) as err:
            raise ValueError(f"{last}: its training state does not fit this run ({err})") from err
        step, best = int(state["step"]), float(state["best_cer"])
        if rank == 0:
            trim_log(out / "metrics.jsonl", step)
    elif rank == 0:
        write_json(out / "config.json", asdict(config))
    net = model
    if world > 1:
        # some parameters sit out whole runs (the time-mask embedding when masking is off)
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
        net.output_lengths, net.hop = model.output_lengths, model.hop

    def checkpoint(name: str) -> None:
        state = {
            **checkpoint_state(model, config, resolved),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if cuda else None,
            "step": step,
            "best_cer": best,
        }
        save_atomic(state, out / name)

    # closed on any exit, so an error message never lands inside the progress bar
    log = closing.enter_context((out / "metrics.jsonl").open("a")) if rank == 0 else None
    bar = closing.enter_context(
        tqdm(
            total=config.steps,
            initial=step,
            desc=f"train {config.preset}",
            disable=not progress or rank != 0,
        )
    )
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    timer = Every(checkpoint_s)
    sampler = StepBatches(
        len(train_set),
        config.batch_size,
        config.order_seed(),
        config.steps,
        start=step,
        rank=rank,
        world=world,
        accumulate=config.accumulate,
    )
    workers = config.num_workers if config.num_workers >= 0 else auto_workers(device)
    batches = iter(
        train_loader(
            train_set,
            sampler,
            workers,
            config.order_seed(),
            pin_memory=cuda,
            collate_fn=pose_collate if pose else collate,
        )
    )
    # workers end with the run, also when a signal or an error ends it (not when collected)
    closing.callback(getattr(batches, "_shutdown_workers", lambda: None))
    while step < config.steps:
        signum = stop.requested(device, world)
        if signum:
            if rank == 0:
                log.flush()
                checkpoint("last.pt")
            how = "interrupted" if signum == signal.SIGINT else "terminated (SIGTERM)"
            raise Interrupted(
                f"{how} at step {step} of {config.steps}; {out / 'last.pt'} is saved: "
                "rerun the same command with --resume to continue",
                signum,
            )
        tic = time.perf_counter()
        model.train()
        optimizer.zero_grad(set_to_none=True)
        try:  # the step's memory: micro-batches, then the optimizer's first moments
            total, stats = 0.0, {}
            for _ in range(config.accumulate):
                batch = _next_batch(batches, step, out)
                batch = {k: v.to(device, non_blocking=cuda) for k, v in batch.items()}
                with autocast:
                    loss, stats = objective(net, batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {loss.item()} at step {step + 1}; stopped, the last "
                        f"good checkpoint {out / 'last.pt'} is kept"
                    )
                (loss / config.accumulate).backward()
                total += float(loss.detach()) / config.accumulate
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            lr = scheduler.get_last_lr()[0]  # the rate this step used
            optimizer.step()
        except torch.cuda.OutOfMemoryError:
            raise out_of_memory(config, resolved, device, world, step, out) from None
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
            cer = _validate(model, split.val, config, pose)
            log.write(json.dumps({"step": step, "val_mae" if pose else "val_cer": cer}) + "\n")
            if cer < best:  # "best_cer" in checkpoints: the angle error for a pose run
                best = cer
                checkpoint("best.pt")
        ending = step == config.steps
        if rank == 0 and (
            ending
            or (config.checkpoint_every and step % config.checkpoint_every == 0)
            or timer.due()
        ):
            if not (out / "best.pt").exists() and ending:
                checkpoint("best.pt")
            log.flush()
            checkpoint("last.pt")
            timer.reset()
        if on_step:
            on_step(step)
    bar.close()
    if log:
        log.close()
    if rank == 0:  # marks the run finished (the book's cache looks for it)
        write_json(out / "done.json", {"train_seconds": time.perf_counter() - start})
    if world > 1:
        dist.barrier()
    return out


def _validate(model: nn.Module, paths: list[Path], config: TrainConfig, pose: bool) -> float:
    """The validation score a run keeps its best weights by: CER, or a pose run's angle
    error (degrees), on ``config.val_windows`` windows."""
    if pose:
        return evaluate_pose(model, paths, config, max_windows=config.val_windows)["overall"]["MAE"]
    result = evaluate_model(model, paths, config, max_windows=config.val_windows, protocol="window")
    return result.overall["CER"]


def fit_or_resume(config: TrainConfig, out_dir: str | Path, progress: bool = True) -> Path:
    """Train into ``out_dir`` to the end, resuming from ``last.pt`` when a checkpoint exists.

    A run killed before its first checkpoint holds nothing worth keeping; ``fit`` starts
    it over. ``done.json`` (written by ``fit``) marks a finished run and records its
    training time."""
    out = Path(out_dir)
    if (out / "done.json").is_file():
        return out
    return fit(config, out, resume=True, progress=progress)


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
    generic = run_config(generic_run)
    config = replace(
        generic,
        data_dir=str(data_dir),
        split=split,
        init=str(generic_run),
        steps=steps,
        lr=lr,
        teacher="",
        checkpoint_every=0,
        val_every=0,
    )
    out = Path(out_dir)
    if not (out / "done.json").is_file():
        fit_or_resume(config, out, progress=progress)
    return out, evaluate(out, data_dir, split, "test")
