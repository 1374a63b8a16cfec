"""Incremental streaming (a step module carrying fixed-shape state) equals offline inference
to 1e-4 for every preset that streams incrementally, for odd chunks and after a reset."""

import pytest
import torch

from semgkit.models import PRESETS, build
from semgkit.stream import Streamer, stream
from semgkit.stream_step import IncrementalStream, step_module, supports_incremental

TOLERANCE = 1e-4  # float rounding: the same sums, in blocks of another size

# every preset but the paper's GroupNorm ones (those stream in sliding-window mode)
STREAMABLE = [n for n, c in PRESETS.items() if getattr(c, "feat_norm", None) != "group"]


def test_streamable_presets():
    assert {"lap-student", "lap-s", "tiny-causal", "small-causal", "tds", "tds-laptop"} <= set(
        STREAMABLE
    )
    assert not any(supports_incremental(build(n)) for n in ("tiny", "small"))


def _offline(model, emg):
    with torch.no_grad():
        return model(emg[None])[0]


@pytest.mark.parametrize("preset", STREAMABLE)
def test_incremental_equals_offline_odd_chunks_and_reset(preset):
    torch.manual_seed(0)
    model = build(preset).eval()
    emg = torch.randn(1500 + 29, 2, 16)
    offline = _offline(model, emg)
    streamer = Streamer(model, 37)
    assert streamer.incremental is not None
    for chunk in (37, 500):  # the second pass runs after a reset
        streamer.reset()
        parts = [streamer.step(emg[i : i + chunk]).log_probs for i in range(0, len(emg), chunk)]
        streamed = torch.cat(parts)
        assert streamed.shape == offline.shape
        assert (streamed - offline).abs().max() < TOLERANCE


@pytest.mark.parametrize("preset", ["tiny-causal", "lap-xs"])
def test_incremental_past_the_attention_window(preset):
    """A short attention window (8 frames) is passed many times: the cache evicts exactly."""
    torch.manual_seed(1)
    model = build(preset, attn_window=8, layers=2).eval()
    emg = torch.randn(1000 + 7, 2, 16)
    streamed, text = stream(model, emg, 53)
    offline = _offline(model, emg)
    assert (streamed - offline).abs().max() < TOLERANCE
    assert text == Streamer(model, 53)._greedy(offline.argmax(-1).tolist())


def test_tds_incremental_after_reset_repeats_bitwise():
    torch.manual_seed(2)
    model = build("tds-laptop").eval()
    runner = IncrementalStream(step_module(model), 99)
    emg = torch.randn(800, 2, 16)
    first = torch.cat([runner.step(emg[i : i + 33]) for i in range(0, 800, 33)])
    runner.reset()
    again = torch.cat([runner.step(emg[i : i + 33]) for i in range(0, 800, 33)])
    assert torch.equal(first, again) and len(first) == 800 // 16


def test_state_has_a_fixed_shape():
    """Constant work per chunk: the state's shapes never change along a stream."""
    model = build("lap-student").eval()
    runner = IncrementalStream(step_module(model), 99)
    shapes = [s.shape for s in runner.state]
    for _ in range(3):
        runner.step(torch.randn(80, 2, 16))
        assert [s.shape for s in runner.state] == shapes


def test_frame_norm_is_causal_and_group_norm_is_not():
    torch.manual_seed(3)
    emg = torch.randn(1, 800, 2, 16)
    later = emg.clone()
    later[:, 600:] += 5.0
    for preset, causal in (("tiny-causal", True), ("tiny", False)):
        model = build(preset).eval()
        with torch.no_grad():
            same = torch.equal(model(emg)[0, :20], model(later)[0, :20])
        assert same == causal, preset
