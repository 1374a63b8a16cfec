"""Command line: ``python -m data_download emg2qwerty|emg2pose|fetch|check ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import emg2pose, emg2qwerty, subset
from .fetch import DownloadError, FetchOptions, check_url, fetch


def _options(args: argparse.Namespace) -> FetchOptions:
    return FetchOptions(
        timeout=args.timeout,
        retries=args.retries,
        verify=args.verify,
        progress=not args.quiet,
        min_rate=args.min_rate,
        rate_window=args.rate_window,
    )


def _cmd_emg2qwerty(args: argparse.Namespace) -> int:
    mirror = _checked_mirror(args.mirror)
    if args.split or args.users:
        selection = subset.select(args.split or [], args.users or [])
        dest = subset.download_subset(args.dest, selection, mirror=mirror, options=_options(args))
        return _print_subset_report(dest, selection.named)
    dest = emg2qwerty.download(args.dest, mirror=mirror, options=_options(args))
    return _print_report(dest, args.quiet)


def _checked_mirror(mirror: str | None) -> str | None:
    """``--mirror`` if it is a URL data_download can fetch from (an error naming the flag)."""
    try:
        return mirror and check_url(mirror)
    except DownloadError as e:
        raise DownloadError(f"--mirror {e}") from None


def _cmd_emg2pose(args: argparse.Namespace) -> int:
    mirror = _checked_mirror(args.mirror)
    dest = emg2pose.download(args.dest, mini=args.mini, mirror=mirror, options=_options(args))
    rep = emg2pose.report(dest, "mini" if args.mini else "full", progress=not args.quiet)
    print(rep.summary())
    if not rep.ok:
        raise DownloadError(f"{dest}: dataset incomplete or damaged (see report above)")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    path = fetch(args.url, args.dest, name=args.name, sha256=args.sha256, options=_options(args))
    print(path)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    if args.split:
        return _print_subset_report(data_dir, subset.select(args.split, [], data_dir).named)
    recorded = emg2qwerty.recorded_selection(data_dir)
    if recorded and not (data_dir / "metadata.csv").exists():
        return _print_subset_report(data_dir, recorded)
    return _print_report(data_dir, args.quiet)


def _print_subset_report(data_dir, named: dict[str, list[str]]) -> int:
    rep = emg2qwerty.subset_report(data_dir, named)
    print(rep.summary())
    if not rep.ok:
        raise DownloadError(f"{data_dir}: subset incomplete or damaged (see report above)")
    return 0


def _print_report(data_dir, quiet: bool) -> int:
    rep = emg2qwerty.report(data_dir, progress=not quiet)
    print(rep.summary())
    if not rep.ok:
        raise DownloadError(f"{data_dir}: dataset incomplete or damaged (see report above)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m data_download",
        description="Resumable, verified download and safe extraction of real sEMG datasets.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def network_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--dest", required=True, help="destination directory")
        p.add_argument(
            "--timeout", type=float, default=15.0, help="socket timeout in seconds (default 15)"
        )
        p.add_argument(
            "--retries",
            type=int,
            default=2,
            help="automatic resumes after a dropped connection that made progress (default 2)",
        )
        p.add_argument(
            "--min-rate",
            type=float,
            default=10240,
            help="give up a transfer slower than this many bytes/s over --rate-window, "
            "keeping the partial file for a rerun (0: no minimum; default 10240)",
        )
        p.add_argument(
            "--rate-window",
            type=float,
            default=60.0,
            help="seconds over which --min-rate is averaged; also the longest wait for a "
            "response's headers (default 60)",
        )
        p.add_argument(
            "--verify",
            action="store_true",
            help="re-hash files the manifest already lists instead of trusting size and mtime",
        )
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("emg2qwerty", help="the emg2qwerty archive + official split YAMLs")
    network_flags(p)
    p.add_argument(
        "--mirror",
        default=None,
        help="base URL serving emg2qwerty-data-2021-08.tar.gz and generic.yaml, user0..7.yaml",
    )
    p.add_argument(
        "--split",
        action="append",
        metavar="NAME|FILE.yaml",
        help="keep only the sessions this split names (repeatable): a shipped split "
        "(generic, user0..user7, single_user, generic-test, few-users-8, few-users-16) or "
        "a split file; the archive is streamed, never stored",
    )
    p.add_argument(
        "--users",
        nargs="+",
        metavar="ID",
        help="keep only these users' sessions (those the official split files list)",
    )
    p.set_defaults(func=_cmd_emg2qwerty)

    p = sub.add_parser("emg2pose", help="the emg2pose archive: the mini set or the release")
    network_flags(p)
    p.add_argument(
        "--mini", action="store_true", help="the ~600 MiB mini set (default: the 431 GiB release)"
    )
    p.add_argument(
        "--mirror", default=None, help=f"base URL serving {emg2pose.MINI} / {emg2pose.FULL}"
    )
    p.set_defaults(func=_cmd_emg2pose)

    p = sub.add_parser("fetch", help="any single file")
    p.add_argument("url")
    network_flags(p)
    p.add_argument("--sha256", default=None, help="expected sha256 (64 hex digits)")
    p.add_argument("--name", default=None, help="file name under DEST (default: from the URL)")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser("check", help="report on an extracted emg2qwerty directory")
    p.add_argument("data_dir")
    p.add_argument(
        "--split",
        action="append",
        metavar="NAME|FILE.yaml",
        help="check only that every session of this split is present and readable "
        "(repeatable; DATA_DIR/splits/NAME.yaml, else the shipped split)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "error: interrupted; partial downloads stay in *.part files and published "
            "members are kept, rerun to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
