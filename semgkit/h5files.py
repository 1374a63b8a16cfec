"""This process's open session files: an LRU of read-only handles, a scratch buffer, and
:class:`RecordFile`, the record reader both session layouts share.

Apart from :mod:`semgkit.data` and :mod:`semgkit.pose`, whose readers deal with their
layouts only.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np

# Open files per process: a forked DataLoader worker must not share its parent's HDF5
# handles, and a corpus of 1,000+ sessions must not hold 1,000+ open files.
MAX_OPEN_FILES = 32
_handles: OrderedDict[tuple[Path, tuple[int, int, int]], _Handle] = OrderedDict()
_handles_pid = os.getpid()


class _Handle:
    """One file, opened on first use as HDF5 (about 1 ms), as raw bytes (microseconds), or both."""

    def __init__(self, path: Path) -> None:
        self.path, self._h5, self._raw = path, None, None

    def h5(self) -> h5py.File:
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        return self._h5

    def raw(self):
        if self._raw is None:
            self._raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 (closed in close)
        return self._raw

    def close(self) -> None:
        for f in (self._h5, self._raw):
            if f is not None:
                f.close()


def file_stamp(path: Path) -> tuple[int, int, int]:
    """(inode, size, mtime): changes when a file is truncated, rewritten or replaced."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _handle(path: Path, stamp: tuple[int, int, int]) -> _Handle:
    global _handles, _handles_pid
    if _handles_pid != os.getpid():  # forked: the inherited handles belong to the parent
        _handles, _handles_pid = OrderedDict(), os.getpid()
    handle = _handles.pop((path, stamp), None)
    if handle is None:
        for key in [k for k in _handles if k[0] == path]:
            _handles.pop(key).close()
        handle = _Handle(path)
    _handles[path, stamp] = handle
    while len(_handles) > MAX_OPEN_FILES:
        _handles.popitem(last=False)[1].close()
    return handle


def open_file(path: Path, stamp: tuple[int, int, int]) -> h5py.File:
    """This process's read-only handle on ``path`` as it is now (``stamp``); the least
    recently used handles, and any on an older version of the file, are closed."""
    return _handle(path, stamp).h5()


def raw_offset(dataset: h5py.Dataset) -> int | None:
    """The file offset of ``dataset``'s records when they lie in the file exactly as numpy
    lays them out (contiguous, unfiltered, the bytes of its first records equal to what
    HDF5 returns for them), else None. Such records are read by :func:`read_raw` with one
    read call and no HDF5 type conversion: about 6x faster per training window."""
    if dataset.chunks is not None or dataset.external or not len(dataset):
        return None
    if dataset.id.get_type().get_size() != dataset.dtype.itemsize:
        return None
    offset = dataset.id.get_offset()
    if offset is None:
        return None
    probe = dataset[: min(len(dataset), 16)]
    with open(dataset.file.filename, "rb") as f:
        f.seek(offset)
        if f.read(probe.nbytes) != probe.tobytes():
            return None
    return offset


def read_raw(
    path: Path, stamp: tuple[int, int, int], offset: int, dtype: np.dtype, rows: range
) -> np.ndarray:
    """Records ``rows`` (step 1) of a dataset at ``offset`` (see :func:`raw_offset`), read
    into this process's scratch buffer: valid until the next read."""
    out = scratch(dtype, len(rows))
    if len(out):
        f = _handle(path, stamp).raw()
        f.seek(offset + rows.start * dtype.itemsize)
        got = f.readinto(out.view(np.uint8))
        if got != out.nbytes:
            raise OSError(f"read {got} of {out.nbytes} bytes: the file ends early")
    return out


T = TypeVar("T")


class RecordFile:
    """A session file read as records of one compound dataset (``GROUP/DATASET``), lazily.

    A subclass's ``__init__`` validates its layout and sets ``path``, ``_stamp``,
    ``_length``, ``_dtype`` and ``_offset`` (:func:`raw_offset`); this class reads records
    from the file as it was when opened, so emg2qwerty's and emg2pose's readers share one
    read path (and its guards against files changed under a run)."""

    GROUP: str = ""
    DATASET: str = "timeseries"
    path: Path
    _stamp: tuple[int, int, int]
    _length: int
    _dtype: np.dtype
    _offset: int | None

    def _open(self, path: str | Path, take: Callable[[h5py.Group], T]) -> T:
        """Open ``path``, check it holds ``GROUP/DATASET``, note the records' dtype, length
        and raw offset, and return ``take(group)`` (what the subclass reads of it)."""
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such session file")
        try:
            with h5py.File(self.path, "r") as f:
                if self.GROUP not in f or self.DATASET not in f[self.GROUP]:
                    raise ValueError(f"{self.path}: no '{self.GROUP}/{self.DATASET}' dataset")
                group = f[self.GROUP]
                dataset = group[self.DATASET]
                self._dtype, self._length = dataset.dtype, len(dataset)
                self._offset = raw_offset(dataset)
                return take(group)
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({err})") from err

    def __len__(self) -> int:
        return self._length

    def _unchanged(self) -> tuple[int, int, int]:
        """The file's stamp; an error naming the file if it was deleted, truncated or
        rewritten since it was opened (a run must not train on a moving file)."""
        try:
            stamp = file_stamp(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path}: session file disappeared while in use") from None
        if stamp != self._stamp:
            raise ValueError(
                f"{self.path}: session file changed while in use (truncated or rewritten; "
                f"{self._stamp[1]} bytes when opened, {stamp[1]} now)"
            )
        return stamp

    def _group(self) -> h5py.Group:
        """The session's HDF5 group, from an unchanged file (see :meth:`_unchanged`)."""
        try:
            return open_file(self.path, self._unchanged())[self.GROUP]
        except OSError as err:
            raise ValueError(f"{self.path}: not a readable HDF5 file ({err})") from err

    def _read(self, rows: slice, field: str | None = None) -> np.ndarray:
        """Records ``rows`` (one ``field`` of them if given); whole records are read into
        this process's scratch buffer, and are valid until the next read. Whole records of
        a contiguous dataset bypass HDF5 (:func:`read_raw`)."""
        raw = field is None and self._offset is not None and rows.step in (None, 1)
        stamp = self._unchanged() if raw else None
        dataset = None if raw else self._group()[self.DATASET]
        try:
            if raw:
                span = range(*rows.indices(len(self)))
                return read_raw(self.path, stamp, self._offset, self._dtype, span)
            if field is not None:
                return dataset.fields(field)[rows]
            start, stop, _ = rows.indices(len(self))
            out = scratch(dataset.dtype, max(stop - start, 0))
            if len(out):
                dataset.read_direct(out, rows)
            return out
        except OSError as err:
            raise ValueError(f"{self.path}: cannot read samples {rows} ({err})") from err


_buffers: dict[np.dtype, np.ndarray] = {}


def scratch(dtype: np.dtype, n: int) -> np.ndarray:
    """A reused buffer of ``n`` records: a fresh 1 MB array per window costs page faults."""
    if dtype not in _buffers or len(_buffers[dtype]) < n:
        _buffers[dtype] = np.empty(n, dtype=dtype)
    return _buffers[dtype][:n]


def close_files() -> None:
    """Close this process's session handles. Needed only to rewrite a session file in place
    from the process that read it: HDF5 will not truncate a file that it holds open."""
    while _handles:
        _handles.popitem()[1].close()
