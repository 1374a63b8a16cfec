"""Subprocess helper for tests/test_train.py: ``fit`` a TrainConfig read from JSON.

    python tests/_train_worker.py CONFIG.json OUT [--kill-after STEP] [--resume]
        [--checkpoint-s S] [--pause-after STEP --until FILE]

``--kill-after STEP`` sends SIGKILL to this process right after optimizer step STEP (and
its checkpoint), the way a crash or an out-of-memory kill would end a run.
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
    args = parser.parse_args()
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

    fit(config, args.out, resume=args.resume, progress=False, on_step=on_step,
        checkpoint_s=args.checkpoint_s)  # fmt: skip


if __name__ == "__main__":
    main()
