"""Are two book builds the same computation? For a refactor that must change nothing.

    python tools/compare_builds.py BUILD_A BUILD_B

Matches the cached runs of two builds by their configuration (cache keys and build paths
masked, since a code change moves every key), then compares every run's weights tensor
by tensor, its evaluations and metrics log value by value (throughput and wall time
aside), the corpus files byte by byte, and every result table cell by cell with the
provenance columns and timing columns (wall clock, latency, throughput) set apart.
Exits 1 when anything other than a timing differs.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import itertools
import json
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

KEY = re.compile(r"(?<=-)[0-9a-f]{12,16}(?![0-9a-z])")
PROVENANCE = {"git_revision", "wall_time_s", "device"}
# measured speeds and times: expected to differ between two runs of the same code
TIMING = re.compile(
    r"^(?!proj_|GFLOPs).*(_ms$|_ms_|_s$| s$| s |seconds|windows_per_s|rtf$|mem_mb$|peak_fraction$|peak_gflops$)"
)
NOT_COMPARED = {"done.json"}  # training wall time only


def mask(text: str, root: Path) -> str:
    return KEY.sub("*", text.replace(str(root.resolve()), "<build>"))


def read_masked(path: Path, root: Path) -> bytes:
    """A file's bytes, with the build's own path masked in a JSON record."""
    data = path.read_bytes()
    return mask(data.decode(), root).encode() if path.suffix == ".json" else data


@functools.cache
def contents(folder: Path, root: Path) -> str:
    """A data directory by what it holds (names and bytes, links followed): its own name
    carries a key that moves with the code."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + read_masked(p, root))
    return h.hexdigest()


def identity(run: Path, root: Path) -> str:
    """A run's configuration with keys and paths masked; a run it starts from (``init``)
    or learns from (``teacher``) stands in as that run's own identity."""
    config = json.loads((run / "config.json").read_text())
    for field, value in config.items():
        if isinstance(value, str) and (Path(value) / "config.json").is_file():
            config[field] = identity(Path(value), root)
        elif isinstance(value, str) and value and Path(value).is_dir():
            config[field] = contents(Path(value), root)
    text = mask(json.dumps([run.parent.name, run.name, config], sort_keys=True), root)
    return hashlib.sha256(text.encode()).hexdigest()


def runs(root: Path) -> dict[str, Path]:
    """Each cached run directory by its :func:`identity`."""
    found: dict[str, Path] = {}
    for config in sorted((root / "cache").glob("*/*/config.json")):
        ident = identity(config.parent, root)
        if ident in found:
            raise SystemExit(f"{config.parent}: two runs of one configuration ({found[ident]})")
        found[ident] = config.parent
    return found


def same(a: Any, b: Any, masks: tuple) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        keys = {k for k in a if not TIMING.search(str(k))}
        return a.keys() == b.keys() and all(same(a[k], b[k], masks) for k in keys)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y, masks) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str):
        return masks[0](a) == masks[1](b)
    return a == b or (a != a and b != b)  # NaN equals NaN here


def load(path: Path) -> Any:
    if path.is_dir():  # e.g. a teacher's cached outputs
        return {p.name: load(p) for p in sorted(path.iterdir()) if not p.name.startswith(".")}
    if path.suffix == ".pt":
        return torch.load(path, map_location="cpu", weights_only=True)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return rows
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_masked_name(run: Path, root: Path) -> dict[str, list[Path]]:
    """A run's files by name with keys masked (a sensor corpus's key moves with the code)."""
    groups: dict[str, list[Path]] = {}
    for p in sorted(run.iterdir()):
        if not p.name.startswith("."):
            groups.setdefault(mask(p.name, root), []).append(p)
    return groups


def compare_runs(a: Path, b: Path) -> list[str]:
    ra, rb = runs(a), runs(b)
    problems = [f"run only in {a}: {ra[k]}" for k in ra.keys() - rb.keys()]
    problems += [f"run only in {b}: {rb[k]}" for k in rb.keys() - ra.keys()]
    masks = (lambda s: mask(s, a), lambda s: mask(s, b))
    files = 0
    for ident in sorted(ra.keys() & rb.keys()):
        da, db = ra[ident], rb[ident]
        ga, gb = by_masked_name(da, a), by_masked_name(db, b)
        if ga.keys() != gb.keys() or any(len(ga[k]) != len(gb[k]) for k in ga):
            problems.append(f"{da.name}: files differ: {sorted(ga.keys() ^ gb.keys())}")
            continue
        for name in sorted(ga.keys() - NOT_COMPARED):
            files += len(ga[name])
            if not any(  # files whose names differ only by a key: some pairing matches
                all(same(load(x), load(y), masks) for x, y in zip(ga[name], order, strict=True))
                for order in itertools.permutations(gb[name])
            ):
                problems.append(f"{da.parent.name}/{da.name}/{name} differs from {db}")
    print(f"runs: {len(ra.keys() & rb.keys())} matched, {files} files compared")
    return problems


def compare_corpus(a: Path, b: Path) -> list[str]:
    def digests(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(read_masked(p, root)).hexdigest()
            for p in sorted((root / "data").rglob("*"))
            if p.is_file() and not p.is_symlink()
        }

    def masked(root: Path) -> dict[str, list[str]]:
        """Digests by path with keys masked: two corpora under keyed names (one per
        sensor) fall in one group, compared as a set, whatever order their keys sort in."""
        groups: dict[str, list[str]] = {}
        for path, digest in digests(root).items():
            groups.setdefault(mask(path, root), []).append(digest)
        return {k: sorted(v) for k, v in groups.items()}

    ma, mb = masked(a), masked(b)
    print(f"corpus: {sum(map(len, ma.values()))} and {sum(map(len, mb.values()))} files")
    return [
        f"corpus file differs or is missing: {k}"
        for k in sorted(ma.keys() | mb.keys())
        if ma.get(k) != mb.get(k)
    ]


def compare_tables(a: Path, b: Path) -> list[str]:
    problems = []
    names = sorted(p.name for p in (a / "results").glob("*.csv"))
    missing = sorted({p.name for p in (b / "results").glob("*.csv")} ^ set(names))
    problems += [f"table in one build only: {n}" for n in missing]
    for name in names:
        if name in missing:
            continue
        ta, tb = (pd.read_csv(root / "results" / name) for root in (a, b))
        if list(ta.columns) != list(tb.columns) or len(ta) != len(tb):
            problems.append(f"{name}: columns or rows differ")
            continue
        timing = [c for c in ta.columns if c in PROVENANCE or TIMING.search(c)]
        differ = [
            c
            for c in ta.columns
            if c not in timing
            and not ta[c]
            .astype(str)
            .map(lambda v: mask(str(v), a))
            .equals(tb[c].astype(str).map(lambda v: mask(str(v), b)))
        ]
        note = f" (timings and provenance set apart: {', '.join(timing)})" if timing else ""
        print(
            f"table {name}: {'identical' if not differ else 'DIFFERS in ' + ', '.join(differ)}{note}"
        )
        problems += [f"{name}: column {c} differs" for c in differ]
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args()
    for root in (args.a, args.b):
        if not (root / "results").is_dir():
            parser.error(f"{root}: not a book build (no results/)")
    problems = compare_runs(args.a, args.b) + compare_corpus(args.a, args.b)
    problems += compare_tables(args.a, args.b)
    for p in problems:
        print("DIFFERENT:", p)
    print("identical" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
