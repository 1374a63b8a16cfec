"""Download, verify and unpack emg2pose (its ~600 MiB mini set or the 431 GiB release), then
check what arrived.

Layout written under DEST (the directory the book's ``DATA=`` points at):

    DEST/<filename>.hdf5 ...        one stage of one hand each (archive's top folder unwrapped)
    DEST/metadata.csv               moved last: its presence means extraction finished
    DEST/emg2pose_dataset[_mini].tar   the archive (may be deleted once extracted)
    DEST/.manifest.json             sizes and sha256 of the archive, and the extraction record

The mini set carries the metadata of the whole release beside its few files; its split is
emg2pose's ``mini_split`` (shipped with semgkit as the pose split ``mini``), the release's
is metadata.csv's ``split`` column (``full``).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import h5py
import yaml
from tqdm import tqdm

from semgkit.format import SAMPLE_RATE
from semgkit.pose_format import GROUP, TIMESERIES, attr_texts, stage_problem

from .archive import MalformedArchiveError, safe_extract
from .fetch import DownloadError, FetchOptions, fetch, load_manifest, update_manifest

BASE_URL = "https://fb-ctrl-oss.s3.amazonaws.com/emg2pose"
MINI, FULL = "emg2pose_dataset_mini.tar", "emg2pose_dataset.tar"
MINI_SPLIT = resources.files("semgkit") / "assets" / "pose_split_mini.yaml"
# An uncompressed tar: the files take about the archive's size again while it is kept.
EXTRACT_RATIO = 1.05
MAX_MEMBERS = 30_000  # the release: 25,253 stage files and metadata.csv


def download(
    dest: Path | str,
    mini: bool = True,
    mirror: str | None = None,
    options: FetchOptions | None = None,
) -> Path:
    """Fetch the archive (resumable, verified by the manifest's sha256) and extract it
    once (safely, :func:`data_download.archive.safe_extract`); returns ``dest``."""
    dest, opts = Path(dest), options or FetchOptions()
    name = MINI if mini else FULL
    url = f"{(mirror or BASE_URL).rstrip('/')}/{name}"
    key = f"extracted:{name}"
    extracted = load_manifest(dest).get(key) if dest.is_dir() else None
    unpacked = extracted is not None and (dest / "metadata.csv").exists()
    if unpacked and not (dest / name).exists():
        return dest  # unpacked by an earlier run and the archive deleted since
    archive = fetch(url, dest, name=name, options=replace(opts, extra_space_ratio=EXTRACT_RATIO))
    sha = load_manifest(dest)[name]["sha256"]
    if unpacked and extracted["archive_sha256"] == sha:
        return dest
    update_manifest(dest, key, None)
    try:
        moved = safe_extract(archive, dest, progress=opts.progress, max_members=MAX_MEMBERS)
    except MalformedArchiveError:
        archive.unlink(missing_ok=True)  # resuming will not repair it: fetch it anew
        update_manifest(dest, name, None)
        raise
    update_manifest(dest, key, {"archive_sha256": sha, "entries": len(moved)})
    return dest


@dataclass
class PoseReport:
    data_dir: Path
    listed: int = 0  # files in metadata.csv
    found: int = 0  # readable stage files on disk
    users: int = 0
    hours: float = 0.0
    sides: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # file name -> reason
    split_missing: dict[str, int] = field(default_factory=dict)  # split -> absent files

    @property
    def ok(self) -> bool:
        return self.found > 0 and not self.unreadable and not any(self.split_missing.values())

    def summary(self) -> str:
        lines = [
            f"emg2pose in {self.data_dir}",
            f"  stage files found: {self.found} ({self.listed} listed in metadata.csv)",
            f"  users: {self.users}   hours: {self.hours:.2f}   unreadable: {len(self.unreadable)}",
            "  sides: " + ", ".join(f"{s} {n}" for s, n in sorted(self.sides.items())),
        ]
        lines += [f"    unreadable {n}: {why}" for n, why in list(self.unreadable.items())[:10]]
        for split, absent in self.split_missing.items():
            lines.append(f"  split {split}: {'complete' if not absent else f'{absent} missing'}")
        return "\n".join(lines)


def read_stage(path: Path) -> tuple[dict[str, str], int]:
    """A stage file's attributes and sample count; ``ValueError`` says what is wrong."""
    with h5py.File(path, "r") as f:
        if GROUP not in f or TIMESERIES not in f[GROUP]:
            raise ValueError(f"no dataset '{GROUP}/{TIMESERIES}'")
        dataset = f[GROUP][TIMESERIES]
        attrs = attr_texts(f[GROUP].attrs)
        problem = stage_problem(dataset.dtype, attrs, len(dataset))
        if problem:
            raise ValueError(problem)
        return attrs, len(dataset)


def report(data_dir: Path | str, split: str, progress: bool = True) -> PoseReport:
    """Check every stage file in ``data_dir``, and whether split ``split`` (``mini``, or
    ``full``: every file metadata.csv lists) is complete."""
    data_dir = Path(data_dir)
    metadata = data_dir / "metadata.csv"
    if not metadata.is_file():
        raise DownloadError(f"{metadata} not found: the dataset is not (completely) extracted")
    with metadata.open(newline="", encoding="utf-8-sig") as f:
        listed = [row.get("filename", "") for row in csv.DictReader(f)]
    rep = PoseReport(data_dir, listed=len(listed))
    users, readable = set(), set()
    for path in tqdm(sorted(data_dir.glob("*.hdf5")), desc="check stages", disable=not progress):
        try:
            attrs, samples = read_stage(path)
        except (OSError, ValueError) as err:
            rep.unreadable[path.name] = str(err).splitlines()[0] or type(err).__name__
            continue
        rep.found += 1
        readable.add(path.stem)
        users.add(attrs["user"])
        rep.sides[attrs["side"]] = rep.sides.get(attrs["side"], 0) + 1
        rep.hours += samples / SAMPLE_RATE / 3600
    rep.users = len(users)
    if split == "mini":
        spec = yaml.safe_load(MINI_SPLIT.read_text())
        names = [n for part in ("train", "val", "test") for n in spec[part]]
    else:
        names = listed
    rep.split_missing[split] = sum(n not in readable for n in names)
    return rep
