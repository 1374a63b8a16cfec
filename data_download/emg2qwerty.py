"""Download, verify and unpack emg2qwerty with its official splits, then check what arrived.

Layout written under DEST (the directory the book's ``DATA=`` points at):

    DEST/<session>.hdf5 ...         the 1,135 sessions (archive's top folder unwrapped)
    DEST/metadata.csv               written last: its presence means extraction finished
    DEST/splits/generic.yaml        official splits, emg2qwerty's YAML layout
    DEST/splits/user0..user7.yaml
    DEST/emg2qwerty-data-2021-08.tar.gz   the archive (may be deleted once extracted)
    DEST/.manifest.json             sizes and sha256 of the above, and the extraction record

A subset (:mod:`data_download.subset`) writes only the sessions and split files it asks
for (no archive, no metadata.csv); :func:`subset_report` checks it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import h5py
import yaml
from tqdm import tqdm

from semgkit.format import ATTRS, FIELDS, GROUP, JSON_ATTRS, TIMESERIES

from . import pins
from .archive import MalformedArchiveError, safe_extract
from .fetch import DownloadError, FetchOptions, fetch, load_manifest, update_manifest

ARCHIVE_URL = "https://fb-ctrl-oss.s3.amazonaws.com/emg2qwerty/emg2qwerty-data-2021-08.tar.gz"
SPLITS_URL = (
    "https://raw.githubusercontent.com/facebookresearch/emg2qwerty/"
    f"{pins.SPLITS_COMMIT}/config/user"
)
ARCHIVE_NAME = ARCHIVE_URL.rsplit("/", 1)[1]
# the manifest entry of subset downloads (data_download.subset): the sessions wanted so
# far and the members published, with their sizes and sha256
SUBSET_RECORD = f"subset:{ARCHIVE_NAME}"
SPLIT_NAMES = ("generic",) + tuple(f"user{i}" for i in range(8))
# Extracted size / archive size, for the free-disk check before downloading. An estimate:
# 346 h x 2 kHz x 136 bytes per sample (32 float32 + one float64) ~ 339 GB of HDF5 against a
# ~308 GB archive (size reported by third parties) gives ~1.10; 1.15 leaves a margin.
EXTRACT_RATIO = 1.15


def urls(mirror: str | None = None) -> dict[str, str]:
    """Relative destination path -> URL. A mirror serves all files flat under one base."""
    archive_name = ARCHIVE_NAME
    if mirror:
        base = mirror.rstrip("/")
        out = {archive_name: f"{base}/{archive_name}"}
        out.update({f"splits/{n}.yaml": f"{base}/{n}.yaml" for n in SPLIT_NAMES})
    else:
        out = {archive_name: ARCHIVE_URL}
        out.update({f"splits/{n}.yaml": f"{SPLITS_URL}/{n}.yaml" for n in SPLIT_NAMES})
    return out


def download(
    dest: Path | str, mirror: str | None = None, options: FetchOptions | None = None
) -> Path:
    """Fetch the split YAMLs and the archive, extract it once; returns ``dest``."""
    dest = Path(dest)
    opts = options or FetchOptions()
    targets = urls(mirror)
    archive_name = next(iter(targets))
    for name, url in targets.items():
        if name.startswith("splits/"):
            pin = {} if mirror else _split_pin(name)
            _check_split_file(fetch(url, dest, name=name, options=opts, **pin))

    key = f"extracted:{archive_name}"
    extracted = load_manifest(dest).get(key) or {}
    unpacked = bool(extracted.get("archive_sha256")) and (dest / "metadata.csv").exists()
    if unpacked and not (dest / archive_name).exists():
        return dest  # unpacked by an earlier run and the archive deleted since
    archive_opts = replace(opts, extra_space_ratio=EXTRACT_RATIO)
    archive = fetch(targets[archive_name], dest, name=archive_name, options=archive_opts)
    sha = load_manifest(dest)[archive_name]["sha256"]
    if unpacked and extracted["archive_sha256"] == sha:
        return dest
    # what earlier extractions created may be replaced; everything else in dest is not
    subset = load_manifest(dest).get(SUBSET_RECORD) or {}
    ours = set(extracted.get("names", [])) | set(subset.get("members", {}))
    update_manifest(dest, key, {"names": sorted(ours)})  # (no archive_sha256: not done)
    try:
        moved = safe_extract(archive, dest, progress=opts.progress, replaceable=ours)
    except MalformedArchiveError:
        # a malformed archive will not get better by resuming: unpublish it (a full disk
        # or a name clash raises a plain DownloadError and keeps the archive for the rerun)
        archive.unlink(missing_ok=True)
        update_manifest(dest, archive_name, None)
        raise
    names = sorted(ours | {p.name for p in moved})
    update_manifest(dest, key, {"archive_sha256": sha, "entries": len(moved), "names": names})
    return dest


def _split_pin(name: str) -> dict:
    """fetch()'s size and sha256 for an official split file (data_download.pins)."""
    size, sha256 = pins.SPLITS[Path(name).stem]
    return {"size": size, "sha256": sha256}


def _check_split_file(path: Path) -> None:
    try:
        split_sessions(path)
    except ValueError as err:
        raise DownloadError(f"{err}; delete it and check the URL or mirror") from err


def split_sessions(path: Path) -> dict[str, list[str]]:
    """Part name (train/val/test) -> session names, from an emg2qwerty split YAML.

    Raises ``ValueError`` naming the file unless it holds ``dataset`` with at least one
    ``{session: ...}`` entry."""
    try:
        spec = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not an emg2qwerty split file (invalid YAML: {err})") from err
    dataset = spec.get("dataset") if isinstance(spec, dict) else None
    if not isinstance(dataset, dict):
        raise ValueError(f"{path}: not an emg2qwerty split file (no 'dataset:' with sessions)")
    parts = {
        part: [str(e["session"]) for e in dataset.get(part) or [] if isinstance(e, dict)]
        for part in ("train", "val", "test")
        if part in dataset
    }
    if not any(parts.values()):
        raise ValueError(f"{path}: not an emg2qwerty split file (no 'dataset:' with sessions)")
    return parts


# ---------------------------------------------------------------- report


@dataclass
class DatasetReport:
    data_dir: Path
    listed: int = 0  # sessions in metadata.csv
    found: int = 0  # of those, readable session files on disk
    users: int = 0
    hours: float = 0.0
    missing: list[str] = field(default_factory=list)  # in metadata.csv, no file
    extra: list[str] = field(default_factory=list)  # file on disk, not in metadata.csv
    unreadable: dict[str, str] = field(default_factory=dict)  # file name -> reason
    conditions: dict[str, int] = field(default_factory=dict)  # e.g. on_keyboard -> sessions
    split_missing: dict[str, int] = field(default_factory=dict)  # split -> absent sessions

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unreadable or any(self.split_missing.values()))

    def summary(self) -> str:
        lines = [
            f"emg2qwerty in {self.data_dir}",
            f"  sessions found: {self.found} of {self.listed} listed in metadata.csv",
            f"  users: {self.users}   hours: {self.hours:.1f}",
            f"  missing: {len(self.missing)}   not in metadata.csv: {len(self.extra)}   "
            f"unreadable: {len(self.unreadable)}",
            "  conditions: " + ", ".join(f"{c} {n}" for c, n in sorted(self.conditions.items())),
        ]
        lines += [f"    missing {name}" for name in self.missing[:10]]
        lines += [
            f"    unreadable {name}: {why}" for name, why in list(self.unreadable.items())[:10]
        ]
        for split, absent in self.split_missing.items():
            lines.append(f"  split {split}: {'complete' if not absent else f'{absent} missing'}")
        return "\n".join(lines)


def read_session_attrs(path: Path) -> dict:
    """The attributes of one session file; raises ``ValueError`` naming what is missing."""
    with h5py.File(path, "r") as f:
        if GROUP not in f:
            raise ValueError(f"no group '{GROUP}'")
        group = f[GROUP]
        if TIMESERIES not in group:
            raise ValueError(f"no dataset '{GROUP}/{TIMESERIES}'")
        names = group[TIMESERIES].dtype.names or ()
        absent = [n for n in FIELDS if n not in names]
        if absent:
            raise ValueError(f"{TIMESERIES} lacks field(s) {', '.join(absent)}")
        absent = [a for a in ATTRS if a not in group.attrs]
        if absent:
            raise ValueError(f"missing attribute(s) {', '.join(absent)}")
        attrs = {a: _text(group.attrs[a]) for a in ATTRS}
    for key in JSON_ATTRS:
        json.loads(attrs[key])  # must be JSON strings
    return attrs


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def read_metadata(path: Path) -> list[dict]:
    if not path.exists():
        raise DownloadError(f"{path} not found: the dataset is not (completely) extracted")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # a BOM is not a column name
            reader = csv.DictReader(f)
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DownloadError(f"{path}: not a readable CSV file ({e})") from None
    if "session" not in (reader.fieldnames or ()) or not rows:
        raise DownloadError(f"{path}: needs a 'session' column and at least one session")
    return rows


def report(data_dir: Path | str, progress: bool = True) -> DatasetReport:
    """Compare the session files in ``data_dir`` with its metadata.csv and split files."""
    data_dir = Path(data_dir)
    rows = read_metadata(data_dir / "metadata.csv")
    listed = {row["session"] for row in rows}
    on_disk = {p.stem: p for p in data_dir.glob("*.hdf5")}
    rep = DatasetReport(data_dir, listed=len(listed))
    rep.missing = sorted(listed - on_disk.keys())
    rep.extra = sorted(on_disk.keys() - listed)
    users = set()
    for name in tqdm(sorted(on_disk), desc="check sessions", disable=None if progress else True):
        try:
            attrs = read_session_attrs(on_disk[name])
        except (OSError, ValueError) as e:
            rep.unreadable[on_disk[name].name] = str(e).splitlines()[0] or type(e).__name__
            continue
        if name in listed:
            rep.found += 1
        users.add(str(attrs["user"]))
        condition = str(attrs["condition"])
        rep.conditions[condition] = rep.conditions.get(condition, 0) + 1
        rep.hours += float(attrs["duration_mins"]) / 60.0
    rep.users = len(users)
    readable = set(on_disk) - {Path(n).stem for n in rep.unreadable}
    for split_file in sorted((data_dir / "splits").glob("*.yaml")):
        sessions = _flatten(split_sessions(split_file).values())
        rep.split_missing[split_file.stem] = sum(s not in readable for s in sessions)
    return rep


def _flatten(lists: Iterable[list[str]]) -> list[str]:
    return [item for sub in lists for item in sub]


# ---------------------------------------------------------------- subset report


@dataclass
class SubsetReport:
    """Which sessions of a selection are on disk and readable, per label."""

    data_dir: Path
    named: dict[str, list[str]]  # label (split NAME, user ID) -> sessions
    missing: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # session -> reason

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unreadable)

    def summary(self) -> str:
        wanted = {s for sessions in self.named.values() for s in sessions}
        absent = set(self.missing) | set(self.unreadable)
        lines = [
            f"emg2qwerty subset in {self.data_dir}",
            f"  sessions found: {len(wanted - absent)} of {len(wanted)} wanted   "
            f"missing: {len(self.missing)}   unreadable: {len(self.unreadable)}",
        ]
        for label, sessions in self.named.items():
            gone = [s for s in sessions if s in absent]
            state = f"{len(gone)} of {len(sessions)} missing" if gone else "complete"
            lines.append(f"  {label}: {state} ({len(sessions)} sessions)")
        lines += [f"    missing {s}" for s in self.missing[:10]]
        lines += [f"    unreadable {s}: {why}" for s, why in list(self.unreadable.items())[:10]]
        return "\n".join(lines)


def subset_report(data_dir: Path | str, named: dict[str, list[str]]) -> SubsetReport:
    """Check that every session ``named`` lists is in ``data_dir`` and opens as one."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DownloadError(f"{data_dir}: no such directory")
    rep = SubsetReport(data_dir, named)
    for session in sorted({s for sessions in named.values() for s in sessions}):
        path = data_dir / f"{session}.hdf5"
        if not path.is_file():
            rep.missing.append(session)
            continue
        try:
            read_session_attrs(path)
        except (OSError, ValueError) as e:
            rep.unreadable[session] = str(e).splitlines()[0] if str(e) else type(e).__name__
    return rep


def recorded_selection(data_dir: Path | str) -> dict[str, list[str]] | None:
    """What subset downloads into ``data_dir`` asked for (label -> sessions), or None."""
    wanted = (load_manifest(Path(data_dir)).get(SUBSET_RECORD) or {}).get("wanted") or {}
    named: dict[str, list[str]] = {}
    for session, label in wanted.items():
        named.setdefault(label, []).append(session)
    return named or None
