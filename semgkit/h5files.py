"""This process's open session files: an LRU of read-only HDF5 handles, and a scratch buffer.

Apart from :mod:`semgkit.data`, whose reader deals with the session layout only.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np

# Open files per process: a forked DataLoader worker must not share its parent's HDF5
# handles, and a corpus of 1,000+ sessions must not hold 1,000+ open files.
MAX_OPEN_FILES = 32
_handles: OrderedDict[tuple[Path, tuple[int, int, int]], h5py.File] = OrderedDict()
_handles_pid = os.getpid()


def file_stamp(path: Path) -> tuple[int, int, int]:
    """(inode, size, mtime): changes when a file is truncated, rewritten or replaced."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def open_file(path: Path, stamp: tuple[int, int, int]) -> h5py.File:
    """This process's read-only handle on ``path`` as it is now (``stamp``); the least
    recently used handles, and any on an older version of the file, are closed."""
    global _handles, _handles_pid
    if _handles_pid != os.getpid():  # forked: the inherited handles belong to the parent
        _handles, _handles_pid = OrderedDict(), os.getpid()
    handle = _handles.pop((path, stamp), None)
    if handle is None:
        for key in [k for k in _handles if k[0] == path]:
            _handles.pop(key).close()
        handle = h5py.File(path, "r")
    _handles[path, stamp] = handle
    while len(_handles) > MAX_OPEN_FILES:
        _handles.popitem(last=False)[1].close()
    return handle


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
