"""Evaluation protocols on hand-built sessions: what each one scores, and stitching."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_data import FS, T0, write_emg2qwerty
from torch import nn

from semgkit import models
from semgkit.charset import CHARSET
from semgkit.cli import main
from semgkit.data import Session
from semgkit.evaluate import evaluate_model
from semgkit.runs import TrainConfig
from semgkit.stitch import stitched_log_probs
from semgkit.tds import TDSConfig


class Oracle(nn.Module):
    """Reads each frame's class from its last sample on channel (0, 0): k + 1 is class k,
    0 the blank. Frame i ends at sample (i + 1) * hop, as in the real models."""

    hop = 20

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))  # so the device can be read

    def forward(self, emg: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        code = emg[:, self.hop - 1 :: self.hop, 0, 0].round().long() - 1
        code = torch.where(code < 0, CHARSET.blank, code)
        return (10.0 * F.one_hot(code, CHARSET.num_classes).float()).log_softmax(-1)


# 5 whole 200-sample windows and a 50-sample tail; (press sample, key)
N = 1050
KEYS = [(190, "a"), (205, "a"), (500, "b"), (1010, "c")]  # "aa" straddles a window edge


@pytest.fixture
def oracle_session(tmp_path):
    """Each key's class written in the frame holding its press: the oracle reads it back."""
    emg = np.zeros((N, 2, 16), dtype=np.float32)
    for sample, key in KEYS:
        emg[(sample // Oracle.hop + 1) * Oracle.hop - 1, 0, 0] = CHARSET.text_to_labels(key)[0] + 1
    strokes = [{"key": k, "start": T0 + s / FS, "end": T0 + s / FS + 0.01} for s, k in KEYS]
    return write_emg2qwerty(tmp_path / "hand.hdf5", n=N, keystrokes=strokes, emg=emg)


def config(**overrides) -> TrainConfig:
    return TrainConfig(
        **{"data_dir": "", "window_s": 0.1, "past_s": 0.02, "future_s": 0.01, **overrides}
    )


def test_session_protocol_scores_the_whole_session_tail_included(oracle_session):
    result = evaluate_model(Oracle(), [oracle_session], config(), protocol="session")
    (row,) = result.predictions.itertuples()
    assert row.target == "aabc"  # "c" is pressed after the last whole window
    assert row.prediction == "abc"  # the oracle's "a", "a" in adjacent frames collapse
    assert result.overall["chars"] == 4 and result.overall["CER"] == pytest.approx(25.0)
    assert result.overall["sessions"] == 1 and "windows" not in result.overall
    assert json.loads(result.to_json())["protocol"] == "session"


def test_window_protocol_scores_each_whole_window_alone(oracle_session):
    result = evaluate_model(Oracle(), [oracle_session], config(), protocol="window")
    table = result.predictions
    assert table["start_s"].tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]  # the tail is no window
    assert table["target"].tolist() == ["a", "a", "b", "", ""]
    assert table["prediction"].tolist() == table["target"].tolist()
    assert result.overall["chars"] == 3 and result.overall["CER"] == 0.0
    assert result.overall["windows"] == 5 and result.overall["sessions"] == 1
    assert json.loads(result.to_json())["protocol"] == "window"


def test_protocol_errors(oracle_session):
    with pytest.raises(ValueError, match="protocol 'whole'"):
        evaluate_model(Oracle(), [oracle_session], config(), protocol="whole")
    with pytest.raises(ValueError, match="max_windows"):
        evaluate_model(Oracle(), [oracle_session], config(), max_windows=2, protocol="session")
    with pytest.raises(ValueError, match="not a whole number"):
        evaluate_model(Oracle(), [oracle_session], config(window_s=0.105))


# receptive field 3 + 3 + 2 x 2 frames: within a 10-frame past
SHORT_CONTEXT = models.ModelConfig(
    d_model=16,
    layers=2,
    heads=2,
    conv_channels=(8, 8, 8),
    feat_norm="batch",
    pos_kernel=4,
    pos_groups=4,
    attn_window=3,
    dropout=0.0,
)


SHORT_TRANSFORMER = {"attn_window": 4, "pos_kernel": 4}  # receptive field about 300 samples


@pytest.mark.parametrize(
    ("architecture", "overrides", "past_s"),
    [
        (SHORT_CONTEXT, {}, 0.1),
        (TDSConfig(mlp_features=32, block_channels=(8, 8), kernel_width=8), {}, 0.2),
        # tds-laptop sees 544 samples back; past % hop = 8, 8 and 0 samples (hop 16)
        ("tds-laptop", {}, 0.5),
        ("tds-laptop", {}, 0.9),
        ("tds-laptop", {}, 0.896),
        # the laptop ladder's shapes with attention and positional conv cut to fit the past
        ("lap-xxs", SHORT_TRANSFORMER, 0.5),
        ("lap-s", SHORT_TRANSFORMER, 0.9),
    ],
)
def test_stitched_windows_equal_one_full_pass(architecture, overrides, past_s, tmp_path):
    """With the receptive field inside the past context and no normalisation over the
    whole input, stitching windows changes nothing, the first window and the tail included,
    whatever past % hop is (each window's frames start where one pass's do); sessions of
    different lengths batched together each get their own frames. Tolerance: 1e-4 absolute
    and relative in log-probability (float32 convolutions over different input lengths)."""
    torch.manual_seed(0)
    model = models.build(architecture, **overrides).eval()
    rng = np.random.default_rng(0)
    emgs = [rng.standard_normal((n, 2, 16)).astype(np.float32) for n in (5030, 2234)]
    sessions = [
        Session(write_emg2qwerty(tmp_path / f"s{i}.hdf5", n=len(emg), emg=emg))
        for i, emg in enumerate(emgs)
    ]
    stitched = dict(stitched_log_probs(model, sessions, config(window_s=0.2, past_s=past_s), 3))
    assert sorted(stitched) == [0, 1]
    for emg, out in zip(emgs, (stitched[0], stitched[1]), strict=True):
        frames = -(-len(emg) // model.hop)
        padded = np.pad(emg, ((0, frames * model.hop - len(emg)), (0, 0), (0, 0)))
        with torch.no_grad():
            full = model(torch.from_numpy(padded)[None])[0]
        assert out.shape == full.shape == (frames, CHARSET.num_classes)
        torch.testing.assert_close(out, full, atol=1e-4, rtol=1e-4)


def test_unbounded_attention_is_close_but_not_equal(tmp_path):
    """A paper-style model (unbounded attention) sees at most past + window of history per
    frame when stitched, so it differs from one full pass, but only in the context it gets."""
    torch.manual_seed(0)
    model = models.build(SHORT_CONTEXT, attn_window=None).eval()
    emg = np.random.default_rng(0).standard_normal((2000, 2, 16)).astype(np.float32)
    session = Session(write_emg2qwerty(tmp_path / "s.hdf5", n=len(emg), emg=emg))
    ((_, stitched),) = stitched_log_probs(model, [session], config(window_s=0.2, past_s=0.1))
    with torch.no_grad():
        full = model(torch.from_numpy(emg)[None])[0]
    first = 20  # the first window has all its history: identical
    torch.testing.assert_close(stitched[:first], full[:first], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(stitched[first:], full[first:], atol=1e-4)


def test_cli_protocol_flag_is_validated(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--data", ".", "--run", ".", "--protocol", "whole"])
    assert "--protocol" in capsys.readouterr().err
