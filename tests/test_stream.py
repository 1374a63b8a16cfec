"""Streaming equals offline causal inference, for several chunk sizes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semgkit.charset import CHARSET
from semgkit.models import PRESETS, build
from semgkit.stream import (
    SlidingWindowStreamer,
    Streamer,
    receptive_field,
    stream,
    window_inference,
)
from semgkit.stream_step import TransformerStep, supports_incremental


class CausalToy(nn.Module):
    """Causal conv featurizer (hop 8) + one windowed causal attention layer: the shape of
    the models' streaming contract, small enough to test the streamer on its own."""

    def __init__(self, window: int | None = 6, group_norm: bool = False):
        super().__init__()
        self.hop, self.window = 8, window
        self.conv = nn.Conv1d(32, 24, kernel_size=16, stride=8)
        self.pos = nn.Conv1d(24, 24, kernel_size=3, groups=24)
        self.norm = nn.GroupNorm(1, 24) if group_norm else nn.Identity()
        self.qkv, self.head = nn.Linear(24, 72), nn.Linear(24, CHARSET.num_classes)

    def output_lengths(self, lengths):
        return lengths // self.hop

    def forward(self, emg, lengths=None):
        x = emg.flatten(2).transpose(1, 2)  # (B, 32, T)
        x = self.norm(self.conv(F.pad(x, (8, 0))))
        x = (x + self.pos(F.pad(x, (2, 0)))).transpose(1, 2)
        q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 4, 6).permute(2, 0, 3, 1, 4)
        i = torch.arange(x.shape[1])
        mask = i[None, :] <= i[:, None]
        if self.window:
            mask = mask & (i[:, None] - i[None, :] < self.window)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).flatten(2)
        return self.head(x + h).log_softmax(-1)


def _offline(model, emg):
    with torch.no_grad():
        return model(emg[None])[0]


@pytest.mark.parametrize("chunk", [8, 80, 37, 200])
def test_stream_equals_offline_toy(chunk):
    torch.manual_seed(0)
    model = CausalToy().eval()
    emg = torch.randn(8 * 150 + 5, 2, 16)
    streamed, text = stream(model, emg, chunk)
    offline = _offline(model, emg)
    assert streamed.shape == offline.shape == (150, CHARSET.num_classes)
    assert torch.allclose(streamed, offline, atol=1e-4)
    from_offline = Streamer(model, 10**6)._greedy(offline.argmax(-1).tolist())
    assert text == from_offline


def test_receptive_field_of_toy():
    # conv: this frame and one before; pos conv: 2 more; attention: 5 more frames
    assert receptive_field(CausalToy().eval()) == 1 + 1 + 2 + 5


def test_noncausal_norm_is_refused():
    with pytest.raises(ValueError, match="not causal"):
        Streamer(CausalToy(group_norm=True), 80)


def test_unbounded_attention_is_refused(monkeypatch):
    monkeypatch.setattr("semgkit.stream.MAX_PROBE_SECONDS", 2.0)
    with pytest.raises(ValueError, match="attn_window"):
        Streamer(CausalToy(window=None), 80)


def test_bad_chunk_shape():
    streamer = Streamer(CausalToy(), 80)
    with pytest.raises(ValueError, match="expected"):
        streamer.step(torch.randn(80, 32))


@pytest.mark.parametrize("preset", ["lap-student", "lap-s"])
@pytest.mark.parametrize("chunk", [80, 50, 333, 4000])
def test_incremental_stream_equals_offline(preset, chunk):
    """The transformer's per-layer state (conv buffers, positional frames, KV cache) gives
    the offline frames, past the attention window (5 s > 200 frames) included."""
    torch.manual_seed(0)
    model = build(preset).eval()
    emg = torch.randn(5 * 2000 + 13, 2, 16)
    streamer = Streamer(model, chunk)
    assert streamer.incremental is not None
    streamed, text = stream(model, emg, chunk)
    offline = _offline(model, emg)
    assert streamed.shape == offline.shape
    assert torch.allclose(streamed, offline, atol=1e-4)
    assert text == Streamer(model, chunk)._greedy(offline.argmax(-1).tolist())


def test_incremental_matches_recompute_and_resets():
    torch.manual_seed(1)
    model = build("lap-xs").eval()
    emg = torch.randn(3000, 2, 16)
    incremental = Streamer(model, 120)
    recompute = Streamer(model, 120, context_frames=receptive_field(model))
    recompute.incremental = None  # the generic receptive-field path
    a = torch.cat([incremental.step(emg[i : i + 120]).log_probs for i in range(0, 3000, 120)])
    b = torch.cat([recompute.step(emg[i : i + 120]).log_probs for i in range(0, 3000, 120)])
    assert torch.allclose(a, b, atol=1e-4)
    incremental.reset()
    again = torch.cat([incremental.step(emg[i : i + 120]).log_probs for i in range(0, 3000, 120)])
    assert torch.equal(a, again)


def test_incremental_refuses_paper_presets():
    with pytest.raises(ValueError, match="feat_norm.*sliding-window mode"):
        TransformerStep(build("tiny"))
    assert not supports_incremental(build("tiny"))
    assert not supports_incremental(build("tds-laptop", causal=False))


def test_incremental_streamer_names_sliding_window_mode_for_paper_presets():
    with pytest.raises(ValueError, match="not causal.*sliding-window mode"):
        Streamer(build("tiny"), 80)


@pytest.mark.parametrize(
    "preset",
    [pytest.param(p, marks=pytest.mark.slow) if p in ("base", "large") else p for p in PRESETS],
)
def test_sliding_window_equals_offline_window_inference(preset):
    """Every preset streams in sliding-window mode: bitwise the offline window inference,
    for an odd chunk size, a chunk spanning several hops, and again after a reset."""
    torch.manual_seed(0)
    model = build(preset).eval()
    window, hop = 400, 80  # short window: a fast test; the mode's default is 5 s
    emg = torch.randn(960 + 37, 2, 16)
    offline = window_inference(model, emg, window, hop)
    assert offline.shape == (960 // hop * (hop // model.hop), CHARSET.num_classes)
    streamer = SlidingWindowStreamer(model, window, hop)
    for chunk in (37, 333):
        streamer.reset()
        parts = [streamer.step(emg[i : i + chunk]).log_probs for i in range(0, len(emg), chunk)]
        assert torch.equal(torch.cat(parts), offline)
    assert streamer.text == Streamer(CausalToy(), 80)._greedy(offline.argmax(-1).tolist())


def test_sliding_window_frames_see_the_window_not_the_whole_signal():
    """Past the first window, a frame is the model on the last window only (GroupNorm over
    that window), which differs from one offline pass over the whole signal."""
    torch.manual_seed(0)
    model = build("tiny").eval()
    emg = torch.randn(1600, 2, 16)
    streamed, _ = stream(model, emg, 160, mode="sliding", window_samples=800, hop_samples=160)
    with torch.no_grad():
        last = model(emg[None, 800:])[0][-8:]
        whole = model(emg[None])[0][-8:]
    assert torch.equal(streamed[-8:], last)
    assert not torch.allclose(streamed[-8:], whole, atol=1e-3)


def test_sliding_window_bad_arguments():
    model = build("lap-xs")
    with pytest.raises(ValueError, match="hop_samples=30"):
        SlidingWindowStreamer(model, 800, 30)
    with pytest.raises(ValueError, match="exceeds window_samples"):
        SlidingWindowStreamer(model, 800, 1600)
    with pytest.raises(ValueError, match="expected"):
        SlidingWindowStreamer(model, 800, 80).step(torch.randn(80, 32))
    with pytest.raises(ValueError, match="mode"):
        stream(model, torch.randn(160, 2, 16), 80, mode="approximate")
