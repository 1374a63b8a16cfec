"""``semgkit eval``: a run on one part of a split, optionally perturbed; prints JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from semgkit import decode, perturb
from semgkit.checkpoint import load_checkpoint
from semgkit.decoders import GREEDY, Decoder
from semgkit.evaluate import PROTOCOLS, evaluate
from semgkit.runs import run_config


def add_cli(subparsers: Any) -> None:
    e = subparsers.add_parser("eval", help="evaluate a run; prints JSON (overall and per user)")
    e.add_argument("--data", required=True, help="corpus directory (emg2qwerty layout)")
    e.add_argument("--run", required=True, type=Path, help="run directory")
    e.add_argument("--split", default="generic", help="split name")
    e.add_argument("--part", default="test", choices=["train", "val", "test"])
    e.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="window: each window scored alone; session: whole sessions, tail included "
        "(default: session for test, window otherwise, as emg2qwerty)",
    )
    e.add_argument(
        "--decoder",
        default="greedy",
        choices=["greedy", "beam"],
        help="greedy (best class per frame; the paper's numbers) or CTC beam search",
    )
    e.add_argument("--beam", type=int, default=None, help="beam width (default 50)")
    e.add_argument(
        "--lm",
        default=None,
        help="character LM for --decoder beam: an ARPA file, 'default' (the shipped English "
        "6-gram; the default for beam) or 'none'",
    )
    e.add_argument(
        "--min-log-prob",
        type=float,
        default=None,
        help="beam: skip keys below this log-probability on a frame (faster)",
    )
    e.add_argument(
        "--rule",
        default=None,
        choices=decode.RULES,
        help="beam: semgkit's search (default) or exactly emg2qwerty's decode_batch",
    )
    perturb.add_flags(e)
    e.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if args.decoder == "greedy":
        beam_flags = (args.beam, args.min_log_prob, args.rule)
        if any(f is not None for f in beam_flags) or args.lm not in (None, "none"):
            raise ValueError("--beam, --lm, --min-log-prob and --rule need --decoder beam")
        decoder = GREEDY
    else:
        decoder = Decoder(
            "beam",
            50 if args.beam is None else args.beam,
            args.lm or "default",
            min_log_prob=args.min_log_prob,
            rule=args.rule or "semgkit",
        )
    perturbation = perturb.parse(args.perturb, args.perturb_seed)  # errors before loading
    _warn_if_unfinished(args.run)
    result = evaluate(
        args.run,
        args.data,
        args.split,
        args.part,
        decoder=decoder,
        protocol=args.protocol,
        perturbation=perturbation,
    )
    if perturbation is None:
        print(result.to_json())
    else:
        payload = json.loads(result.to_json())
        payload["perturbation"] = {"specs": perturbation.specs, "seed": perturbation.seed}
        print(json.dumps(payload, indent=1))
    return 0


def _warn_if_unfinished(run: Path) -> None:
    """A run without ``done.json`` was stopped or is still training: its ``best.pt`` may
    be from its first steps. Evaluating it is allowed (watching a long run is a use), but
    never silently: one line on stderr says so and from which step the weights are."""
    if (run / "done.json").is_file() or not (run / "best.pt").is_file():
        return  # finished, or not a run (load_run names what is missing)
    state = load_checkpoint(run / "best.pt", ("step",))
    steps = run_config(run).steps if (run / "config.json").is_file() else "?"
    print(
        f"semgkit eval: warning: {run} is not a finished run (no done.json): best.pt is from "
        f"step {state['step']} of {steps}; resume it with --resume to finish, or expect "
        "the error rates of a model that has not finished training",
        file=sys.stderr,
    )
