"""``semgkit synth``: write the synthetic typing corpus from a preset."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from semgkit.populations import POPULATIONS, population_flag
from semgkit.synth import CORPUS_PRESETS, generate


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "synth", help="write the synthetic sEMG typing corpus (emg2qwerty format)"
    )
    p.add_argument("--out", required=True, type=Path, help="corpus directory to write")
    p.add_argument("--preset", default="laptop", help=f"corpus preset: {sorted(CORPUS_PRESETS)}")
    p.add_argument("--profile", dest="old_preset", help="deprecated alias of --preset")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument(
        "--session-minutes", type=float, help="length of every session (default: the preset's)"
    )
    p.add_argument(
        "--population",
        action="append",
        default=[],
        metavar="NAME[:USERS]",
        help=f"add a held-out population ({', '.join(POPULATIONS)}), USERS users (default 4), "
        "scored by splits/holdout-NAME.yaml (repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a non-corpus directory")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    flag, preset = "--preset", args.preset
    if args.old_preset is not None:  # "profile" names a book profile everywhere else
        print("semgkit synth: --profile is deprecated, use --preset", file=sys.stderr)
        flag, preset = "--profile", args.old_preset
    if preset not in CORPUS_PRESETS:
        raise ValueError(f"{flag} {preset!r}: choose from {sorted(CORPUS_PRESETS)}")
    config = CORPUS_PRESETS[preset]
    if args.session_minutes is not None:
        if not 0.1 <= args.session_minutes <= 24 * 60:
            raise ValueError(f"--session-minutes {args.session_minutes}: need 0.1 to 1440")
        config = replace(config, session_s=60.0 * args.session_minutes)
    if args.population:
        config = replace(config, populations=tuple(map(population_flag, args.population)))
    out = generate(args.out, config, args.seed, overwrite=args.overwrite)
    print(out)
    return 0
