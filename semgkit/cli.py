"""`semgkit` command line: each subcommand lives beside the code it drives.

Every module in ``COMMAND_MODULES`` exposes ``add_cli(subparsers)``, which registers its
subcommand(s) and sets ``func`` to a callable taking the parsed arguments and returning
an exit code.
"""

from __future__ import annotations

import argparse
import signal
import sys

from semgkit import bench, checkpoint, eval_cli, export, lm, loader, memory, synth_cli, train_cli

# train_cli also registers `distill`
COMMAND_MODULES = (synth_cli, train_cli, eval_cli, bench, loader, export, lm, checkpoint, memory)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semgkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, ArithmeticError, MemoryError) as err:
        # OSError(errno, message) carries its whole message in strerror
        plain = isinstance(err, OSError) and err.strerror and err.filename is None
        print(f"semgkit {args.command}: error: {err.strerror if plain else err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # training saved a checkpoint and says how to resume
        print(f"semgkit {args.command}: {err or 'interrupted'}", file=sys.stderr)
        return 128 + getattr(err, "signum", signal.SIGINT)  # 130, or 143 for SIGTERM


if __name__ == "__main__":
    raise SystemExit(main())
