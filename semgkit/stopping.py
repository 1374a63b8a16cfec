"""Stopping a run cleanly: Ctrl-C or SIGTERM (a preempted job) ends training at the next
step boundary, where the loop saves a checkpoint and raises :class:`Interrupted` naming
the signal; :class:`Every` times the periodic checkpoints."""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Any

import torch


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped a run after saving its checkpoint; the message
    says how to resume. ``signum`` is the signal: a command exits with 128 + ``signum``."""

    def __init__(self, message: str = "", signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self) -> tuple:  # keeps the signal across a process pool's pickling
        return (type(self), (str(self), self.signum))


STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


class StopOnInterrupt:
    """Turn the first Ctrl-C (SIGINT) or SIGTERM into a request to stop at the next step
    boundary: SIGTERM is what Slurm, Kubernetes and Colab send before they stop a job.

    The training loop checks :meth:`requested`, saves ``last.pt`` and raises
    :class:`Interrupted`. A second signal acts at once (the last checkpoint stays
    intact). Outside the main thread signals cannot be caught, and they act as usual."""

    def __init__(self) -> None:
        self.signum = 0
        self.previous: dict[int, Any] = {}

    @property
    def flag(self) -> bool:
        return bool(self.signum)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signum = signum
        for s, handler in self.previous.items():
            signal.signal(s, handler)
        again = f"{STOP_SIGNALS[signum]} again to abort at once"
        print(f"\nstopping after this step ({again})", file=sys.stderr)

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.signum:
            for s, handler in self.previous.items():
                signal.signal(s, handler)

    def requested(self, device: torch.device, world: int) -> int:
        """The signal to stop for, or 0; under DDP, on every process as soon as one got it
        (torchrun passes a SIGTERM to every rank, a user's Ctrl-C may reach one)."""
        if world == 1:
            return self.signum
        import torch.distributed as dist

        signum = torch.tensor([float(self.signum)], device=device)
        dist.all_reduce(signum, op=dist.ReduceOp.MAX)
        return int(signum.item())


class Every:
    """A timer that is due once ``seconds`` have passed since it was last reset."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.reset()

    def reset(self) -> None:
        self.start = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.start >= self.seconds
