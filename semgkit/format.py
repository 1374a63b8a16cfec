"""emg2qwerty's on-disk layout: the names and rates every reader and writer shares.

A session is one HDF5 file with a group ``GROUP`` holding a structured dataset
``TIMESERIES`` (fields ``FIELDS``: two bands of ``ELECTRODES`` channels and a time
stamp, sampled at ``SAMPLE_RATE``) and the attributes ``ATTRS``; keystrokes and prompts
are JSON strings. Synthetic corpora are written in the same layout, so one reader serves
both.
"""

from __future__ import annotations

SAMPLE_RATE = 2000  # Hz
BANDS = ("left", "right")  # one wristband per hand
ELECTRODES = 16  # channels per band
CHANNELS = len(BANDS) * ELECTRODES

GROUP = "emg2qwerty"
TIMESERIES = "timeseries"
EMG_FIELDS = tuple(f"emg_{band}" for band in BANDS)  # ("emg_left", "emg_right")
TIME_FIELD = "time"
FIELDS = (*EMG_FIELDS, TIME_FIELD)
# Attributes of every session, as the release writes them (``duration_mins`` included).
ATTRS = ("session_name", "user", "condition", "duration_mins", "keystrokes", "prompts")
JSON_ATTRS = ("keystrokes", "prompts")
