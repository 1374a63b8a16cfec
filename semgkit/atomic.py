"""Writing a file atomically: a reader, a kill or a full disk never leaves half a file.

Everything semgkit writes (checkpoints, logs, tables, caches, ONNX models, corpus
sessions) goes through :func:`atomic_path`: a temporary name in the same directory,
synced, then renamed over the target. On failure the temporary is removed, the previous
file stays whole, and the error names the file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def publish(tmp: str | Path, path: str | Path) -> None:
    """Sync ``tmp`` and rename it to ``path`` with the mode a plain ``open`` would give
    (0666 less the umask; ``mkstemp`` makes files private)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path for a writer that wants a file name (h5py, ONNX, ``np.save``);
    published to ``path`` when the block ends without an error, removed otherwise.

    The temporary is ``.NAME.XXXXXXXX.tmp`` (``suffix`` after it, for a writer that
    appends its own extension such as ``np.save``), so debris of a kill matches
    ``.*.tmp*``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publish(tmp, path)
    except OSError as err:
        if err.errno is None:
            raise
        kept = f"; the previous {path.name} is intact" if path.exists() else ""
        full = " (disk full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise OSError(err.errno, f"{path}: cannot write{full}: {err.strerror}{kept}") from err
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes | memoryview) -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with tmp.open("w" if isinstance(data, str) else "wb") as f:
            f.write(data)
