"""Session files whose fields or JSON attributes are of the wrong kind: a one-line error
naming the file and the field or attribute (docs/RELIABILITY.md, "Training runs")."""

import json
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from semgkit.data import Session

T0 = 1.6e9
KEYS = [{"key": "a", "start": T0 + 0.1, "end": T0 + 0.2}]


def write_session(
    path: Path,
    emg_dtype: str = "<f4",
    time_dtype: str = "<f8",
    n: int = 400,
    keystrokes: str | None = None,
    prompts: str = "[]",
) -> Path:
    dtype = [("emg_left", emg_dtype, (16,)), ("emg_right", emg_dtype, (16,)), ("time", time_dtype)]
    data = np.zeros(n, dtype=np.dtype(dtype))
    if np.dtype(emg_dtype).kind in "fiu":
        data["emg_left"] = np.arange(n)[:, None] % 7
        data["emg_right"] = 1
    if np.dtype(time_dtype).kind == "f":
        data["time"] = T0 + np.arange(n) / 2000
    with h5py.File(path, "w") as f:
        group = f.create_group("emg2qwerty")
        group.create_dataset("timeseries", data=data)
        attrs = {
            "session_name": path.stem,
            "user": "u",
            "condition": "on_keyboard",
            "duration_mins": 0.1,
            "prompts": prompts,
            "keystrokes": json.dumps(KEYS) if keystrokes is None else keystrokes,
        }
        group.attrs.update(attrs)
    return path


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(emg_dtype="S4"), "field emg_left holds |S4 values, not numbers"),
        (dict(time_dtype="S8"), "field time holds |S8 values, not float seconds"),
        (dict(n=0), "timeseries has 0 sample(s); a session needs at least 2"),
        (dict(n=1), "timeseries has 1 sample(s)"),
        (dict(keystrokes='{"key": "a"}'), "attribute keystrokes must be a JSON list of objects"),
        (dict(keystrokes="[1, 2]"), "attribute keystrokes must be a JSON list of objects"),
        (
            dict(keystrokes='[{"key": "a", "start": "soon"}]'),
            "keystrokes[0] 'start' is not a number",
        ),
        (dict(keystrokes='[{"key": "a", "start": NaN}]'), "keystrokes[0] 'start' is not a number"),
        (dict(keystrokes='[{"key": "a", "start": true}]'), "keystrokes[0] 'start' is not a number"),
        (dict(keystrokes='[{"start": 1.0}]'), "keystrokes[0] 'key' is not a text"),
        (dict(keystrokes="[{'key': 'a'}]"), "attribute keystrokes is not valid JSON"),
        (dict(prompts="not json"), "attribute prompts is not valid JSON"),
        (dict(prompts='"hello"'), "attribute prompts must be a JSON list of objects"),
    ],
)
def test_bad_field_or_attribute_is_named_with_the_file(tmp_path, kwargs, needle):
    path = write_session(tmp_path / "bad.hdf5", **kwargs)
    with pytest.raises(ValueError) as err:
        session = Session(path)  # checks the layout; the JSON attributes are read on use
        session.key_events(), session.prompts
    message = str(err.value)
    assert message.startswith(f"{path}: ") and needle in message and "\n" not in message


@pytest.mark.parametrize("kind", ["<i2", "<u2", "<i4"])
def test_integer_emg_is_read_unscaled_with_a_warning(tmp_path, kind):
    path = write_session(tmp_path / "counts.hdf5", emg_dtype=kind)
    with pytest.warns(
        UserWarning, match=f"counts.hdf5: field emg_left is {np.dtype(kind)}.*without scaling"
    ):
        session = Session(path)
    assert session.emg.dtype == np.float32
    np.testing.assert_array_equal(session.emg[:8, 0, 0], np.arange(8) % 7)


def test_float_emg_reads_without_a_warning(tmp_path):
    path = write_session(tmp_path / "ok.hdf5", emg_dtype="<f8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(Session(path)) == 400
