"""Chunked causal inference with state: feed sEMG as it arrives, get CTC frames and text
(or, from a model with the pose head, its per-frame joint angles).

The streamer works on any model that maps (batch, samples, 2, 16) to (batch, frames, 99)
causally with a bounded receptive field (causal convolutions with left padding and
attention limited to ``attn_window`` past frames). Its state is the last ``context``
samples of signal, the receptive field measured once per model; each step runs the model
on that context plus the new chunk and keeps only the frames that are complete. Frames
whose whole receptive field lies inside the buffer are exactly the offline frames, so
the stream equals offline causal inference (to float rounding) for any chunk size.

Models that are not causal (the paper presets normalise over the whole window with
GroupNorm, which looks ahead) or whose attention is unbounded are refused with a clear
error rather than streamed approximately: `receptive_field` detects both by perturbing
the signal and watching which frames move. Those models stream in sliding-window mode
instead (`SlidingWindowStreamer`): every hop the model reruns on the last window, as it
was trained, and emits the hop's new frames, exactly offline window inference
(`window_inference`); the cost is one window's forward per hop.

For the causal transformers with a per-frame featurizer norm and for the causal TDS-ConvNet
the streamer goes further and keeps each layer's own state (`semgkit.stream_step`): the
convolutions' last inputs, the positional convolution's last frames and a key/value cache
over the attention window, or the spectrogram's and each TDS block's last frames, so each
step computes only the new frames instead of re-running the whole receptive field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from semgkit.charset import CHARSET
from semgkit.decode import collapse
from semgkit.format import SAMPLE_RATE
from semgkit.stream_step import IncrementalStream, step_module

MAX_PROBE_SECONDS = 64.0  # longest signal used to look for the end of the receptive field
WINDOW_SAMPLES = 5 * SAMPLE_RATE  # sliding window: the paper's 4 s window + 0.9 s + 0.1 s context
HOP_SAMPLES = 80  # sliding window: 40 ms between reruns


@dataclass
class StepOutput:
    log_probs: torch.Tensor  # (frames emitted this step, 99); a pose model's angles (.., 20)
    text: str  # characters decoded this step (greedy CTC, collapsed across chunk edges)


def _frames(model: nn.Module, emg: torch.Tensor) -> torch.Tensor:
    return model(emg)[0]


@torch.no_grad()
def receptive_field(model: nn.Module, seed: int = 0) -> int:
    """Frames of past context each output frame depends on (itself included).

    Perturbs one hop of signal in the middle of a random probe and finds the last frame
    that changes. Raises ValueError if an earlier frame changes (the model looks ahead) or
    if the change reaches the end of the longest probe (unbounded attention)."""
    model = model.eval()
    hop = int(model.hop)
    gen = torch.Generator().manual_seed(seed)
    frames = 64
    while frames * hop <= MAX_PROBE_SECONDS * SAMPLE_RATE:
        x = torch.randn(1, frames * hop, 2, 16, generator=gen)
        mid = frames // 4
        y = x.clone()
        y[:, mid * hop : (mid + 1) * hop] += 3 * torch.randn(1, hop, 2, 16, generator=gen)
        changed = (_frames(model, x) != _frames(model, y)).any(dim=-1).nonzero().flatten()
        if len(changed) and changed.min() < mid:
            raise ValueError(
                f"model {type(model).__name__} is not causal: changing signal at frame {mid} "
                f"changes frame {int(changed.min())} (a norm over the window, e.g. GroupNorm in "
                "the paper presets, looks ahead); streaming it incrementally would be approximate, "
                "so it is refused: stream it in sliding-window mode instead "
                "(SlidingWindowStreamer, or stream(..., mode='sliding'))"
            )
        if len(changed) and changed.max() < frames - 1:
            return int(changed.max()) - mid + 1
        frames *= 4
    raise ValueError(
        f"model {type(model).__name__}: the receptive field exceeds {MAX_PROBE_SECONDS:.0f} s "
        "(unbounded attention?); set attn_window to stream it"
    )


class Streamer:
    """Stateful chunked inference: ``step(chunk)`` per incoming chunk of (samples, 2, 16).

    Models with a step module (`semgkit.stream_step`) stream incrementally, constant work
    per chunk; others rerun their receptive field, ``context_frames`` (measured when not
    given) frames of past signal, at every step.
    """

    def __init__(self, model: nn.Module, chunk_samples: int, context_frames: int | None = None):
        if chunk_samples < 1:
            raise ValueError(f"chunk_samples={chunk_samples}: must be >= 1")
        self.model = model.eval()
        self.hop = int(model.hop)
        probe = torch.tensor([self.hop * 7, self.hop * 7 + self.hop // 2])
        if model.output_lengths(probe).tolist() != [7, 7]:
            raise ValueError(
                f"model {type(model).__name__}: output_lengths must be samples // hop for streaming "
                f"(hop={self.hop}, got {model.output_lengths(probe).tolist()} for {probe.tolist()})"
            )
        self.chunk_samples = chunk_samples
        self.outputs, self.ctc = _head(model)
        step = step_module(model)
        self.incremental = None if step is None else IncrementalStream(step, self.outputs)
        # the generic path reruns the receptive field; a step module carries its own state
        self.context_frames = context_frames or (0 if step else receptive_field(model))
        self.reset()

    def warmup_chunks(self) -> int:
        """Chunks until the buffer holds a full receptive field (steady-state cost); none
        for a step module, whose state has its full size from the first chunk."""
        return -(-self.context_frames * self.hop // self.chunk_samples)

    def reset(self) -> None:
        self.buffer = torch.zeros(0, 2, 16)  # signal not yet forgotten; starts at a frame edge
        self.buffer_start = 0  # global frame index of buffer[0]
        self.frames_done = 0  # frames emitted so far
        self.last_label = CHARSET.blank  # for greedy collapse across chunk edges
        self.text = ""
        if self.incremental is not None:
            self.incremental.reset()

    def step(self, chunk: torch.Tensor) -> StepOutput:
        """Feed (samples, 2, 16) of new signal; returns the frames and text it completes."""
        _check_chunk(chunk)
        if self.incremental is not None:
            log_probs = self.incremental.step(chunk)
            self.frames_done += len(log_probs)
            new_text = self._greedy(log_probs.argmax(-1).tolist())
            self.text += new_text
            return StepOutput(log_probs, new_text)
        self.buffer = torch.cat([self.buffer, chunk.to(self.buffer.dtype)])
        complete = self.buffer_start + len(self.buffer) // self.hop
        if complete == self.frames_done:
            return StepOutput(torch.zeros(0, self.outputs), "")
        # the first new frame needs context_frames - 1 frames before it
        start = max(self.buffer_start, self.frames_done - self.context_frames + 1)
        offset = (start - self.buffer_start) * self.hop
        usable = (complete - self.buffer_start) * self.hop
        with torch.inference_mode():
            out = _frames(self.model, self.buffer[None, offset:usable])
        log_probs = out[self.frames_done - start :]
        self.frames_done = complete
        # keep only what the next step's first frame (complete) can still see
        keep_from = max(self.buffer_start, complete - self.context_frames + 1)
        self.buffer = self.buffer[(keep_from - self.buffer_start) * self.hop :]
        self.buffer_start = keep_from
        new_text = self._greedy(log_probs.argmax(-1).tolist())
        self.text += new_text
        return StepOutput(log_probs, new_text)

    def _greedy(self, labels: list[int]) -> str:
        if not self.ctc:
            return ""
        self.last_label, text = _greedy(labels, self.last_label)
        return text


class SlidingWindowStreamer:
    """Sliding-window inference: every ``hop_samples`` the model reruns on the last
    ``window_samples`` of signal (all of it while less has arrived) and emits the frames
    of that hop, the last ``hop_samples // model.hop`` of the window's output.

    For models that normalise over their input window (the paper presets' GroupNorm), so
    each frame sees the window it would see offline; equal to `window_inference` for any
    chunk size. A chunk that crosses several hop ends runs the model once per hop end."""

    def __init__(
        self, model: nn.Module, window_samples: int = WINDOW_SAMPLES, hop_samples: int = HOP_SAMPLES
    ) -> None:
        hop = int(model.hop)
        for name, value in (("window_samples", window_samples), ("hop_samples", hop_samples)):
            if value < hop or value % hop:
                raise ValueError(
                    f"{name}={value}: must be a positive multiple of the model hop {hop}"
                )
        if hop_samples > window_samples:
            raise ValueError(f"hop_samples={hop_samples} exceeds window_samples={window_samples}")
        self.model = model.eval()
        self.window, self.hop_samples = window_samples, hop_samples
        self.hop_frames = hop_samples // hop
        self.outputs, self.ctc = _head(model)
        self.reset()

    def reset(self) -> None:
        self.buffer = torch.zeros(0, 2, 16)  # the signal a later window still needs
        self.buffer_start = 0  # global sample index of buffer[0]
        self.emitted_to = 0  # global sample index of the last hop end emitted
        self.last_label = CHARSET.blank
        self.text = ""

    def step(self, chunk: Tensor) -> StepOutput:
        """Feed (samples, 2, 16) of new signal; returns the frames of every hop it completes."""
        _check_chunk(chunk)
        self.buffer = torch.cat([self.buffer, chunk.to(self.buffer.dtype)])
        parts = [torch.zeros(0, self.outputs)]
        while self.buffer_start + len(self.buffer) >= self.emitted_to + self.hop_samples:
            end = self.emitted_to + self.hop_samples
            start = max(0, end - self.window)
            window = self.buffer[start - self.buffer_start : end - self.buffer_start]
            with torch.inference_mode():
                parts.append(_frames(self.model, window[None])[-self.hop_frames :])
            self.emitted_to = end
        drop = max(0, self.emitted_to + self.hop_samples - self.window - self.buffer_start)
        self.buffer, self.buffer_start = self.buffer[drop:], self.buffer_start + drop
        log_probs = torch.cat(parts)
        new_text = ""
        if self.ctc:
            self.last_label, new_text = _greedy(log_probs.argmax(-1).tolist(), self.last_label)
        self.text += new_text
        return StepOutput(log_probs, new_text)


@torch.no_grad()
def window_inference(
    model: nn.Module,
    emg: Tensor,
    window_samples: int = WINDOW_SAMPLES,
    hop_samples: int = HOP_SAMPLES,
) -> Tensor:
    """Offline reference of the sliding window: for each hop end t, the model on
    emg[max(0, t - window) : t], keeping its last hop of frames -> (frames, classes)."""
    model.eval()
    hop_frames = hop_samples // int(model.hop)
    ends = range(hop_samples, len(emg) + 1, hop_samples)
    parts = [model(emg[None, max(0, t - window_samples) : t])[0][-hop_frames:] for t in ends]
    return torch.cat(parts) if parts else torch.zeros(0, _head(model)[0])


def _head(model: nn.Module) -> tuple[int, bool]:
    """(outputs per frame, whether they are CTC log-probabilities that decode to text)."""
    config = getattr(model, "config", None)
    return getattr(config, "num_classes", CHARSET.num_classes), getattr(
        config, "head", "ctc"
    ) == "ctc"


def _check_chunk(chunk: Tensor) -> None:
    if chunk.dim() != 3 or tuple(chunk.shape[1:]) != (2, 16):
        raise ValueError(f"chunk shaped {tuple(chunk.shape)}: expected (samples, 2, 16)")


def _greedy(labels: list[int], previous: int) -> tuple[int, str]:
    """Greedy CTC labels of new frames, collapsed across the chunk edge -> (last label, text)."""
    kept = collapse(labels, previous=previous)
    return (labels[-1] if labels else previous), CHARSET.labels_to_text(kept)


def stream(
    model: nn.Module,
    emg: torch.Tensor,
    chunk_samples: int,
    context_frames: int | None = None,
    mode: str = "incremental",
    **window: int,
):
    """Stream a whole (samples, 2, 16) signal chunk by chunk -> ((frames, 99), text).

    ``mode="sliding"`` uses `SlidingWindowStreamer` (``window`` takes its window_samples
    and hop_samples); ``"incremental"`` the causal `Streamer`."""
    if mode == "sliding":
        streamer = SlidingWindowStreamer(model, **window)
    elif mode == "incremental":
        streamer = Streamer(model, chunk_samples, context_frames)
    else:
        raise ValueError(f"mode {mode!r}: choose 'incremental' or 'sliding'")
    parts = [
        streamer.step(emg[i : i + chunk_samples]).log_probs
        for i in range(0, len(emg), chunk_samples)
    ]
    return torch.cat(parts), streamer.text
