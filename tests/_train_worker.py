"""Subprocess helper for tests/test_train.py: ``fit`` a TrainConfig read from JSON.

    python tests/_train_worker.py CONFIG.json OUT [--kill-after STEP] [--resume]
        [--checkpoint-s S] [--pause-after STEP --until FILE] [--kill-writing NAME:K]

``--kill-after STEP`` sends SIGKILL to this process right after optimizer step STEP (and
its checkpoint), the way a crash or an out-of-memory kill would end a run.
``--kill-writing last.pt:2`` sends it halfway through writing the second ``last.pt``.
``--pause-after STEP`` prints ``paused`` after step STEP and waits until FILE exists, so a
test can act while the run provably holds its directory. Run under
``torch.distributed.run`` it trains one rank of a DistributedDataParallel job.
"""

import argparse
import json
import os
import signal
import time
from pathlib import Path

import torch

from semgkit import runs
from semgkit.runs import TrainConfig
from semgkit.train import fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--checkpoint-s", type=float, default=600.0)
    parser.add_argument("--pause-after", type=int, default=0)
    parser.add_argument("--until", type=Path, default=None)
    parser.add_argument("--kill-writing", default="")
    args = parser.parse_args()
    if args.kill_writing:
        kill_while_writing(*args.kill_writing.split(":"))
    torch.set_num_threads(1)
    with open(args.config) as f:
        config = TrainConfig(**json.load(f))

    def on_step(step: int) -> None:
        if step == args.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if step == args.pause_after:
            print("paused", flush=True)
            while not args.until.exists():
                time.sleep(0.05)

    fit(
        config,
        args.out,
        resume=args.resume,
        progress=False,
        on_step=on_step,
        checkpoint_s=args.checkpoint_s,
    )


def kill_while_writing(name: str, nth: str) -> None:
    """SIGKILL this process halfway through its ``nth`` write of a file called ``name``,
    with the first half on disk under a temporary name like ``atomic_write``'s."""
    write, seen = runs.atomic_write, []

    def half_then_kill(path: Path, data) -> None:
        if path.name == name:
            seen.append(path)
            if len(seen) == int(nth):
                with path.with_name(f".{path.name}.{os.getpid()}.tmp").open("wb") as f:
                    raw = data.encode() if isinstance(data, str) else bytes(data)
                    f.write(raw[: len(raw) // 2])
                os.kill(os.getpid(), signal.SIGKILL)
        write(path, data)

    runs.atomic_write = half_then_kill


if __name__ == "__main__":
    main()
