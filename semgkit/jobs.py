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
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any

from tqdm.auto import tqdm


def run_jobs(
    fn: Callable[..., Any],
    args: Sequence[tuple],
    jobs: int,
    desc: str = "runs",
    after: Sequence[int | None] | None = None,
) -> list[Any]:
    """``[fn(*a) for a in args]``, ``jobs`` at a time in worker processes; results in order.

    ``after[i]``, when given and not None, is the index of the job that must finish before
    job ``i`` starts (a distilled run that reads the teacher outputs another one writes);
    the others start in the order given as workers free up. ``jobs == 1`` (or a single
    job) runs in this process, in the order given, which must then respect ``after``. The
    first job to fail stops the others from starting and its exception is raised here;
    jobs already running finish (a training run checkpoints as usual, so nothing is lost)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: must be >= 1")
    after = list(after) if after is not None else [None] * len(args)
    if len(after) != len(args):
        raise ValueError(f"after has {len(after)} entries for {len(args)} jobs")
    for i, j in enumerate(after):
        if j is not None and not 0 <= j < i:
            raise ValueError(f"after[{i}] = {j}: a job can only wait for one listed before it")
    if jobs == 1 or len(args) <= 1:
        return [fn(*a) for a in tqdm(args, desc=desc, disable=len(args) <= 1)]
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(max_workers=min(jobs, len(args)), mp_context=context) as pool,
        tqdm(total=len(args), desc=f"{desc}, {jobs} at a time") as bar,
    ):
        futures: dict[int, Future] = {}
        finished: set[int] = set()

        def submit_ready() -> None:  # queued in the order given; the pool runs `jobs` at once
            for i, a in enumerate(args):
                if i not in futures and (after[i] is None or after[i] in finished):
                    futures[i] = pool.submit(fn, *a)

        submit_ready()
        while len(finished) < len(args):
            pending = [f for i, f in futures.items() if i not in finished]
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in futures.values():
                    f.cancel()
                raise failed[0].exception()
            finished |= {i for i, f in futures.items() if f in done}
            bar.update(len(done))
            submit_ready()
        return [futures[i].result() for i in range(len(args))]
