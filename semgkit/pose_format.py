"""emg2pose's on-disk layout and hand model: the names every pose reader and writer shares.

A stage is one HDF5 file ``<filename>.hdf5`` with a group ``GROUP`` holding a compound
dataset ``TIMESERIES`` (fields ``time`` (float64 seconds), ``emg`` (16 float32 electrodes of
one wrist, 2 kHz) and ``joint_angles`` (20 float64 angles of that hand, radians)) and the
attributes ``ATTRS``. ``metadata.csv`` beside the files has one row per file
(``METADATA_COLUMNS``); emg2pose's splits come from its ``split`` column or from a split
file listing file names under ``train``/``val``/``test`` (``config/data_split``).

An inverse-kinematics failure is a sample whose 20 angles are all zero (``np.isclose``):
emg2pose masks those samples out of its losses and metrics and, with
``skip_ik_failures``, draws windows only from runs without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from semgkit.format import ELECTRODES  # one band's electrodes, as emg2qwerty's

GROUP = "emg2pose"
TIMESERIES = "timeseries"
TIME, EMG, JOINT_ANGLES = "time", "emg", "joint_angles"
FIELDS = (TIME, JOINT_ANGLES, EMG)  # in the order emg2pose's files store them
NUM_JOINTS = 20
SIDES = ("left", "right")  # the wrist a stage was recorded on: its band in (T, 2, 16)
# Attributes of every stage file, as emg2pose's test asset writes them.
ATTRS = tuple("filename session stage user side sample_rate num_channels start end".split())
REQUIRED_ATTRS = ("session", "user", "side")
METADATA_COLUMNS = tuple(
    "filename user session stage side moving_hand held_out_user held_out_stage split "
    "generalization start end".split()
)
PARTS = ("train", "val", "test")

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
PD_GROUPS = ("proximal", "mid", "distal")
# (name, finger, proximal-distal group) of each joint angle, in the files' order
# (emg2pose's constants.JOINTS). AA: abduction/adduction, FE: flexion/extension.
JOINTS = (
    ("THUMB_CMC_FE", "thumb", "proximal"),
    ("THUMB_CMC_AA", "thumb", "proximal"),
    ("THUMB_MCP_FE", "thumb", "mid"),
    ("THUMB_IP_FE", "thumb", "distal"),
    *(
        (f"{finger.upper()}_{joint}", finger, group)
        for finger in FINGERS[1:]
        for joint, group in (
            ("MCP_AA", "proximal"),
            ("MCP_FE", "proximal"),
            ("PIP_FE", "mid"),
            ("DIP_FE", "distal"),
        )
    ),
)


def joints_of(group: str) -> list[int]:
    """Indices of the joints of a finger (``FINGERS``) or a proximal-distal group."""
    out = [i for i, (_, finger, pd) in enumerate(JOINTS) if group in (finger, pd)]
    if not out:
        raise ValueError(f"no joint group {group!r}; choose from {FINGERS + PD_GROUPS}")
    return out


def attr_texts(attrs: Mapping[str, Any]) -> dict[str, str]:
    """A stage's attributes as text (h5py gives bytes for some strings)."""
    return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in attrs.items()}


def stage_problem(dtype: Any, attrs: Mapping[str, str], samples: int) -> str | None:
    """What keeps a stage's records (``dtype``, a numpy dtype) and attributes from being
    emg2pose's, in one line naming the field or attribute; None when it is fine."""
    names = dtype.names or ()
    for field, width in ((TIME, ()), (EMG, (ELECTRODES,)), (JOINT_ANGLES, (NUM_JOINTS,))):
        if field not in names:
            return f"{GROUP}/{TIMESERIES} has no field {field} (fields: {names})"
        if dtype[field].base.kind != "f" or dtype[field].shape != width:
            return f"field {field} holds {dtype[field]} per sample, expected floats shaped {width}"
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        return f"{GROUP} lacks attribute(s) {missing}"
    if attrs["side"] not in SIDES:
        return f"attribute side is {attrs['side']!r}, expected 'left' or 'right'"
    if samples < 2:
        return f"{TIMESERIES} has {samples} sample(s)"
    return None
