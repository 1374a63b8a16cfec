"""Windows to a model through ``torch.utils.data.DataLoader`` worker processes, and its speed.

A run stays a pure function of (seed, step) with any number of workers: the batch sampler
asks ``batch_indices`` for each step's indices and hands the dataset ``(epoch, index)``
pairs, so a worker needs no state from the main process (``set_epoch`` would not reach a
persistent worker), and a resumed run starts the sampler at its step.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from semgkit import models, paper
from semgkit.atomic import atomic_write
from semgkit.data import load_split
from semgkit.windows import WindowedDataset, collate

PR_SET_PDEATHSIG = 1  # linux/prctl.h


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


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Micro-batches of global steps ``start .. steps - 1`` for one of ``world`` ranks.

    Each step's global batch is ``batch_indices(step, batch_size, n, seed)``; this rank takes
    every ``world``-th index from ``rank`` and yields them in ``accumulate`` micro-batches of
    ``(epoch, index)`` pairs, exactly the windows the in-process loop reads."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        steps: int,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
        accumulate: int = 1,
    ) -> None:
        if batch_size % (world * accumulate):
            raise ValueError(
                f"batch_size {batch_size} must divide by processes x accumulate "
                f"({world} x {accumulate})"
            )
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.steps = start, steps
        self.rank, self.world, self.accumulate = rank, world, accumulate

    def __len__(self) -> int:
        return max(self.steps - self.start, 0) * self.accumulate

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        micro = self.batch_size // (self.world * self.accumulate)
        for step in range(self.start, self.steps):
            epoch, indices = batch_indices(step, self.batch_size, self.n, self.seed)
            mine = indices[self.rank :: self.world]
            for k in range(self.accumulate):
                yield [(epoch, i) for i in mine[k * micro : (k + 1) * micro]]


def seed_worker(worker_id: int, parent: int = 0) -> None:
    """Seed a worker's global generators from its torch seed (a function of the loader's
    generator and the worker id), and keep it to one thread: workers are processes.

    A worker ends with its process: Ctrl-C and SIGTERM sent to the whole process group
    are the main process's to handle (it stops at a step boundary, then shuts workers
    down), and on Linux the kernel kills a worker whose parent died (a SIGKILL), which
    would otherwise read on for seconds holding the run directory's lock. ``parent`` is
    the pid of the process that made the loader."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if parent and os.getppid() != parent:  # it died before prctl took effect
            os._exit(1)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    torch.set_num_threads(1)


def auto_workers(device: torch.device) -> int:
    """The worker count ``num_workers=-1`` means: none when the model trains on the CPU
    (workers would only move the same reads to other processes, plus a transfer, on cores
    the model uses), else every core of this process's share of the machine
    (``LOCAL_WORLD_SIZE`` processes under torchrun) but one, for the training loop: the
    small presets need more windows per second than a core can read (docs/PERFORMANCE.md)."""
    if device.type == "cpu":
        return 0
    share = (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(0, share - 1)


def train_loader(
    dataset: Dataset,
    batch_sampler: Sampler,
    num_workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    prefetch_factor: int = 4,
    collate_fn: Callable = collate,
) -> DataLoader:
    """A DataLoader over ``batch_sampler`` with persistent, prefetching workers.

    Worker seeds come from a generator seeded with ``seed``, not from torch's global
    generator, so creating the loader (again, on resume) leaves the training RNG alone."""
    if num_workers < 0:
        raise ValueError(f"num_workers={num_workers}: must be >= 0")
    workers = num_workers > 0
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        worker_init_fn=functools.partial(seed_worker, parent=os.getpid()),
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=workers,
        prefetch_factor=prefetch_factor if workers else None,
    )


# ---------------------------------------------------------------- throughput benchmark

_PROBE = """
import json, resource, sys
from semgkit.loader import measure
row = measure(**json.loads(sys.argv[1]))
row["peak_rss_main_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
children = resource.getrusage(resource.RUSAGE_CHILDREN)
row["peak_rss_worker_mb"] = children.ru_maxrss / 1024
row["cpu_s"] += children.ru_utime + children.ru_stime  # the workers, joined by now
row["cpu_ms_per_window"] = 1e3 * row["cpu_s"] / row["windows"]
print(json.dumps(row))
"""


def measure(
    data_dir: str,
    split: str,
    sessions: int | None,
    window: int,
    past: int,
    future: int,
    batch_size: int,
    batches: int,
    num_workers: int,
    task: str = "typing",
) -> dict[str, float]:
    """Windows/s and MB/s of training batches read through ``train_loader`` (the first
    batches, which include the workers' start, are timed too: a run pays for them).
    CPU seconds are reported beside wall time: on a busy machine they tell what a free
    core would do. ``task="pose"`` reads emg2pose stage files (sEMG, angles and IK mask)."""
    if task == "pose":
        from semgkit.pose import PoseWindows, load_pose_split, pose_collate

        paths = load_pose_split(data_dir, split).train[:sessions]
        dataset, collate_fn = PoseWindows(paths, window, past, future, train=True), pose_collate
    elif task == "typing":
        paths = load_split(data_dir, split).train[:sessions]
        dataset, collate_fn = WindowedDataset(paths, window, past, future, train=True), collate
    else:
        raise ValueError(f"task {task!r}: choose typing or pose")
    sampler = StepBatches(len(dataset), batch_size, seed=0, steps=batches)
    start, cpu = time.perf_counter(), time.process_time()
    windows = nbytes = 0
    for batch in train_loader(dataset, sampler, num_workers, collate_fn=collate_fn):
        windows += len(batch["emg"])
        nbytes += batch["emg"].numel() * 4
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "task": task,
        "workers": num_workers,
        "sessions": len(dataset.sessions),
        "window_samples": past + window + future,
        "windows": windows,
        "seconds": seconds,
        "windows_per_s": windows / seconds,
        "windows_per_s_per_worker": windows / seconds / max(num_workers, 1),
        "mb_per_s": nbytes / seconds / 1e6,
        "cpu_s": cpu,  # this process; the probe adds its workers'
    }


def bench_loader(workers: list[int], **settings: object) -> pd.DataFrame:
    """One row per worker count, each measured in a fresh process so its peak resident
    memory (main process, and the largest worker) and CPU time are its own."""
    rows = []
    for n in workers:
        args = json.dumps({**settings, "num_workers": n})
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"loader benchmark with {n} worker(s) failed:\n{done.stderr[-2000:]}"
            )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


def workers_needed(cpu_ms_per_window: float, gpu_tflops: float, window_s: float) -> pd.DataFrame:
    """Per paper preset: the windows/s a GPU would consume training it at ``gpu_tflops``
    (3 x forward FLOPs, ``models.flops_per_second``, per window of ``window_s`` seconds),
    and the loader cores that takes at ``cpu_ms_per_window`` (main process and workers):
    a projection from a CPU measurement, for presets that are FLOP-bound."""
    rows = []
    for preset in ("tiny", "small", "medium", "large"):
        flops = 3 * models.flops_per_second(preset, paper.WINDOW_S) * window_s
        demand = gpu_tflops * 1e12 / flops
        rows.append(
            {
                "preset": preset,
                "train_gflop_per_window": flops / 1e9,
                "windows_per_s_at_gpu": demand,
                "loader_cores": demand * cpu_ms_per_window / 1e3,
            }
        )
    return pd.DataFrame(rows)


def _cli(args: argparse.Namespace) -> int:
    if args.out.suffix != ".csv":
        raise ValueError(f"--out {args.out}: expected a file name ending in .csv")
    if min(args.workers) < 0 or args.batches < 1 or args.batch_size < 1:
        raise ValueError("--workers must be >= 0, --batches and --batch-size >= 1")
    samples = lambda s: int(round(s * args.sample_rate))  # noqa: E731
    df = bench_loader(
        args.workers,
        data_dir=str(args.data),
        split=args.split,
        sessions=args.sessions,
        window=samples(args.window_s),
        past=samples(args.past_s),
        future=samples(args.future_s),
        batch_size=args.batch_size,
        batches=args.batches,
        task=args.task,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, df.to_csv(index=False))
    print(df.to_markdown(index=False, floatfmt=".4g"))
    fed = df[df["workers"] > 0]
    if len(fed):
        cost = float(fed["cpu_ms_per_window"].max())
        print(
            f"\nLoader cores a GPU at {args.gpu_tflops:g} TFLOP/s needs, at {cost:.3g} ms of "
            f"CPU per window (the dearest worker count above):"
        )
        window_s = args.window_s + args.past_s + args.future_s
        table = workers_needed(cost, args.gpu_tflops, window_s)
        print(table.to_markdown(index=False, floatfmt=".3g"))
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench-data", help="loader throughput (windows/s, MB/s) and peak memory per worker count"
    )
    p.add_argument("--data", required=True, type=Path, help="corpus directory")
    p.add_argument("--split", default="generic", help="split whose train part is read")
    p.add_argument(
        "--task",
        choices=["typing", "pose"],
        default="typing",
        help="typing: emg2qwerty sessions; pose: emg2pose stage files (sEMG, angles, IK mask)",
    )
    p.add_argument("--sessions", type=int, help="read only the first N training sessions")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="worker counts")
    p.add_argument("--window-s", type=float, default=4.0, help="central window, seconds")
    p.add_argument("--past-s", type=float, default=0.9, help="past context, seconds")
    p.add_argument("--future-s", type=float, default=0.1, help="future context, seconds")
    p.add_argument("--sample-rate", type=int, default=2000, help="Hz")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=50, help="batches read per worker count")
    p.add_argument(
        "--gpu-tflops",
        type=float,
        default=250.0,
        help="sustained training TFLOP/s assumed for the loader-cores projection",
    )
    p.add_argument("--out", type=Path, default=Path("build/results/bench-data.csv"))
    p.set_defaults(func=_cli)
