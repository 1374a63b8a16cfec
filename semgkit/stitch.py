"""Whole sessions through a windowed model in bounded memory: windows with context,
their central frames stitched in order (the ``session`` protocol of :mod:`semgkit.evaluate`).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from semgkit.data import Session
from semgkit.runs import TrainConfig


def central_frames(model: nn.Module, config: TrainConfig) -> tuple[int, int]:
    """[lo, hi): the frames of a ``past + window + future`` input that belong to the window."""
    window = config.samples(config.window_s)
    if window % model.hop:
        raise ValueError(
            f"window_s={config.window_s} is {window} samples, not a whole number of the "
            f"model's {model.hop}-sample frames"
        )
    lo = config.samples(config.past_s) // model.hop
    return lo, lo + window // model.hop


@torch.no_grad()
def stitched_log_probs(
    model: nn.Module,
    sessions: Sequence[Session],
    config: TrainConfig,
    batch_size: int = 16,
    progress: bool = False,
) -> Iterator[tuple[int, Tensor]]:
    """(index, (ceil(T / hop), classes)) for each whole session of T samples: windows with
    context, stitched; yielded as soon as the session's last window is through the model.

    Each window carries ``past`` samples before it, rounded up to whole frames of the
    model's hop, so that its frames start where one full pass's do (a 1000-sample past
    over a 16-sample hop would leave every frame 8 samples off); fewer near the start,
    with no zeros before the session, as in one full pass; and ``future`` after it (zeros
    past the end). Windows with the same context are batched across sessions: memory is
    ``batch_size`` windows (read lazily) plus the sessions in flight, whatever the
    sessions' lengths."""
    device = next(model.parameters()).device
    window = config.samples(config.window_s)
    past = -(-config.samples(config.past_s) // model.hop) * model.hop  # whole frames
    future = config.samples(config.future_s)
    lo, hi = central_frames(model, config)
    frames = [-(-len(session) // model.hop) for session in sessions]
    jobs = sorted(
        (min(start, past), i, start)
        for i, n in enumerate(frames)
        for start in range(0, n * model.hop, window)
    )  # grouped by context, then in session order
    left = Counter(i for _, i, _ in jobs)  # windows still to come, per session
    pieces: list[dict[int, Tensor]] = [{} for _ in sessions]
    bar = tqdm(total=len(jobs), desc="eval", unit="window", disable=not progress)
    for context, same in itertools.groupby(jobs, key=lambda job: job[0]):
        same = list(same)
        skip = context // model.hop  # a whole number: starts are whole frames
        for b in range(0, len(same), batch_size):
            batch = same[b : b + batch_size]
            x = np.stack([sessions[i].window(s - c, s + window + future) for c, i, s in batch])
            x = torch.from_numpy(x).to(device)
            lengths = torch.full((len(batch),), x.shape[1], dtype=torch.long, device=device)
            out = model(x, lengths)[:, skip : skip + hi - lo].float().cpu()
            bar.update(len(batch))
            for (_, i, s), y in zip(batch, out, strict=True):
                pieces[i][s] = y
                left[i] -= 1
                if left[i] == 0:  # the session is complete: hand it over, let its frames go
                    done, pieces[i] = pieces[i], {}
                    yield i, torch.cat([done[s] for s in sorted(done)])[: frames[i]]
    bar.close()
