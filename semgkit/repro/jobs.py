"""Several runs at once on one machine: ``jobs`` worker processes, each job started when
a worker is free and the job it waits for (if any) has finished.

On a small CPU the book's models are too small to keep two cores busy: a step of the
50x student spends much of its time in per-operator dispatch and data reading, which one
thread does as fast as two. Measured on the 2-core development machine (docs/PERFORMANCE.md,
entry 10): two 1-thread runs side by side finish 1.35x (lap-l) to 1.75x (lap-s) sooner
than the same two runs one after the other with 2 threads each. A run's result depends on
its own thread count (``TrainConfig.num_threads``), not on what runs beside it, so the
weights are the same whichever way the runs are scheduled (tests/test_jobs.py).

Workers are started with ``spawn`` (no fork of a process holding torch's thread pools or
a Jupyter kernel's sockets); each job is a module-level function and picklable arguments.
A worker ends within a second of the process that started it: a kernel killed for memory
must not leave its runs training with no one to read them (tests/test_book.py).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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
    job ``i`` starts (a distilled run needs its teacher). Whenever a worker is free it
    takes the first job in ``args`` order whose prerequisite has finished, so the order is
    the priority. ``jobs == 1`` (or a single job) runs in this process, by the same rule.
    The first job to fail stops the others from starting and its exception is raised
    here; jobs already running finish (a training run checkpoints as usual)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: must be >= 1")
    n = len(args)
    after = list(after) if after is not None else [None] * n
    if len(after) != n:
        raise ValueError(f"after has {len(after)} entries for {n} jobs")
    _check_acyclic(after)
    results: dict[int, Any] = {}

    def ready(busy: Collection[int]) -> list[int]:
        free = [i for i in range(n) if i not in results and i not in busy]
        return [i for i in free if after[i] is None or after[i] in results]

    if jobs == 1 or n <= 1:
        for _ in tqdm(range(n), desc=desc, disable=n <= 1):
            i = ready(())[0]
            results[i] = fn(*args[i])
        return [results[i] for i in range(n)]
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(
            max_workers=min(jobs, n),
            mp_context=context,
            initializer=_exit_with,
            initargs=(os.getpid(),),
        ) as pool,
        tqdm(total=n, desc=f"{desc}, {jobs} at a time") as bar,
    ):
        running: dict[Future, int] = {}
        while len(results) < n:
            for i in ready(running.values())[: jobs - len(running)]:
                running[pool.submit(fn, *args[i])] = i
            done, _ = wait(running, return_when=FIRST_COMPLETED)  # a free worker
            for f in done:
                if f.exception() is not None:
                    raise f.exception()  # leaving the pool waits for the running jobs
                results[running.pop(f)] = f.result()
            bar.update(len(done))
    return [results[i] for i in range(n)]


def _exit_with(parent: int) -> None:
    """A worker's initializer: end the worker once ``parent`` is gone (it is then
    re-parented, so its parent id changes), whatever job it is running."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _check_acyclic(after: list[int | None]) -> None:
    """Every chain of prerequisites ends: no job waits, through others, for itself."""
    for i in range(len(after)):
        seen, j = {i}, after[i]
        while j is not None:
            if not 0 <= j < len(after):
                raise ValueError(f"after[{i}] = {j}: no such job")
            if j in seen:
                raise ValueError(f"after: job {i} waits for itself through {sorted(seen)}")
            seen.add(j)
            j = after[j]
