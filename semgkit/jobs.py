"""Several independent runs at once on one machine: ``jobs`` worker processes.

On a small CPU the book's models are too small to keep two cores busy: a step of the
50x student spends much of its time in per-operator dispatch and data reading, which one
thread does as fast as two. Measured on the 2-core development machine (docs/PERFORMANCE.md,
entry 9): two 1-thread runs side by side finish 1.35x (lap-l) to 1.75x (lap-s) sooner
than the same two runs one after the other with 2 threads each. A run's result depends on
its own thread count (``TrainConfig.num_threads``), not on what runs beside it, so the
weights are the same whichever way the runs are scheduled (tests/test_jobs.py).

Workers are started with ``spawn`` (no fork of a process holding torch's thread pools or
a Jupyter kernel's sockets); each job is a module-level function and picklable arguments.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from typing import Any

from tqdm.auto import tqdm


def run_jobs(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    jobs: int,
    desc: str = "runs",
) -> list[Any]:
    """``[fn(*a) for a in args]``, ``jobs`` at a time in worker processes; results in order.

    ``jobs == 1`` (or a single job) runs in this process. The first job to fail stops the
    others from starting and its exception is raised here; jobs already running finish
    (a training run checkpoints as usual, so nothing is lost)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: must be >= 1")
    if jobs == 1 or len(args) <= 1:
        return [fn(*a) for a in tqdm(args, desc=desc, disable=len(args) <= 1)]
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(max_workers=min(jobs, len(args)), mp_context=context) as pool,
        tqdm(total=len(args), desc=f"{desc}, {jobs} at a time") as bar,
    ):
        futures = [pool.submit(fn, *a) for a in args]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            bar.update(len(done))
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                raise failed[0].exception()
        return [f.result() for f in futures]
