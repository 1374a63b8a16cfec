"""emg2pose stage files built in the test, exactly in emg2pose's layout: the compound dtype
and field order of its test asset (``emg2pose/tests/scripts/create_test_hdf5.py``), the
dataset assigned whole (contiguous), and its nine attributes with their types."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

POSE_DTYPE = np.dtype([("time", "<f8"), ("joint_angles", "<f8", (20,)), ("emg", "<f4", (16,))])


def write_stage(
    path: Path,
    angles: np.ndarray,
    emg: np.ndarray | None = None,
    side: str = "right",
    user: str = "d387095792",
    dtype: np.dtype = POSE_DTYPE,
    **attrs,
) -> Path:
    """A stage file at ``path`` holding ``angles`` (T, 20) and ``emg`` (T, 16)."""
    n = len(angles)
    records = np.zeros(n, dtype=dtype)
    records["time"] = 1670313313.18 + np.arange(n) / 2000.0
    if "joint_angles" in dtype.names:
        records["joint_angles"] = angles
    records["emg"] = np.random.default_rng(0).standard_normal((n, 16)) if emg is None else emg
    metadata = {
        "filename": path.stem,
        "session": path.stem.rsplit("_", 1)[0],
        "stage": "IndividualFingerPointingSnap_both",
        "user": user,
        "side": side,
        "sample_rate": 2000.0,
        "num_channels": np.int64(16),
        "start": 1670313313.1833334,
        "end": 1670313374.1,
        **attrs,
    }
    with h5py.File(path, "w") as f:
        group = f.create_group("emg2pose")
        group["timeseries"] = records
        group.attrs.update(metadata)
    return path
