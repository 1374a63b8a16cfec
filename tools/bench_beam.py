"""CPU seconds of CTC decoding per minute of sEMG, on one core: greedy and beam search.

Emissions are one minute at the paper transformer's frame rate (2 kHz / hop 20 = 100 Hz),
made two ways since no trained model is assumed here: "peaky", shaped like a trained CTC
model (a blank at log p ~ -1e-5 between keys, the other keys near log p -16; 5 keys/s typed
from the synthetic prompts, each key two frames wide with a random rival), and "flat", where ten or more keys stay within
reach on every frame, so every frame extends every prefix with the 10 keys the search
keeps: the search's worst case. Each decoder runs under semgkit's rule (with and without
Table 2's floor of log p -8) and under emg2qwerty's (``rule="emg2qwerty"``, no floor).

    python tools/bench_beam.py [--beam 50] [--seconds 60]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from semgkit import decode, lm, models, typist
from semgkit.charset import CHARSET


def emissions(kind: str, frames: int, rate: float, rng: np.random.Generator) -> torch.Tensor:
    """(1, frames, 99) log-probabilities of one of the two kinds described above."""
    if kind == "flat":
        logits = 2.0 * rng.standard_normal((frames, CHARSET.num_classes))
        logits[:, CHARSET.blank] += 6.0
    else:
        logits = rng.standard_normal((frames, CHARSET.num_classes))
        logits[:, CHARSET.blank] += 16.0
        text = "\n".join(typist.load_prompts())
        labels = CHARSET.text_to_labels(text)
        step = int(rate / 5)  # 5 keys per second
        for i, frame in enumerate(range(step // 2, frames - 2, step)):
            rival = int(rng.integers(CHARSET.num_keys))
            logits[frame : frame + 2, labels[i % len(labels)]] += 18.0
            logits[frame : frame + 2, rival] += 16.0 + 2.0 * rng.standard_normal()
    return torch.from_numpy(logits).log_softmax(-1)[None].float()


def seconds_per_minute(decoder, log_probs: torch.Tensor, rate: float) -> float:
    """CPU seconds of this thread (busy other cores do not inflate it) per sEMG minute."""
    start = time.thread_time()
    decoder(log_probs)
    return (time.thread_time() - start) / (log_probs.shape[1] / rate / 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rate = models.SAMPLE_RATE / models.PRESETS["small"].hop
    start = time.perf_counter()
    model = lm.default()
    print(f"lm.default() loaded in {time.perf_counter() - start:.1f} s")
    decoders = {
        "greedy": decode.greedy,
        f"beam {args.beam}": lambda x: decode.beam_search(x, beam=args.beam),
        f"beam {args.beam} + LM": lambda x: decode.beam_search(x, beam=args.beam, lm=model),
        f"beam {args.beam} + LM, labels above log p -8": lambda x: decode.beam_search(
            x, beam=args.beam, lm=model, min_log_prob=-8.0
        ),
        f"beam {args.beam}, emg2qwerty's rule": lambda x: decode.beam_search(
            x, beam=args.beam, rule="emg2qwerty"
        ),
        f"beam {args.beam} + LM, emg2qwerty's rule": lambda x: decode.beam_search(
            x, beam=args.beam, lm=model, rule="emg2qwerty"
        ),
    }
    print(f"{'emissions':10} {'decoder':44} CPU s per minute of sEMG ({rate:g} frames/s)")
    for kind in ("peaky", "flat"):
        x = emissions(kind, int(args.seconds * rate), rate, np.random.default_rng(0))
        for name, decoder in decoders.items():
            print(f"{kind:10} {name:44} {seconds_per_minute(decoder, x, rate):.2f}")


if __name__ == "__main__":
    main()
