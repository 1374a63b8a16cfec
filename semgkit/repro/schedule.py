"""Computing the book's runs: training, fine-tuning and evaluating what the cache lacks.

Each step skips what is cached already (re-executing the book after a prose edit finds
every run done; an interrupted run resumes from its last checkpoint) and runs the rest
``P.train.jobs`` at a time (:mod:`semgkit.repro.jobs`). :mod:`semgkit.repro.measured`
then reads the results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from semgkit import models
from semgkit.decoders import Decoder
from semgkit.evaluate import evaluate, evaluate_decoders, model_and_paths
from semgkit.repro import jobs
from semgkit.repro.measured import decoded_paths, test_eval_path
from semgkit.repro.profiles import Profile
from semgkit.repro.recipes import (
    personal_dir,
    personal_recipe,
    personal_split,
    prepare_corpus,
    run_dir,
)
from semgkit.runs import TrainConfig, run_config
from semgkit.train import fit_or_resume, personalize


def run(P: Profile, config: TrainConfig) -> Path:
    """Train ``config`` once; later calls with the same config and code return the cached run.

    An interrupted ``make book`` resumes each run from its last checkpoint. A run trained
    elsewhere into ``recipes.run_dir(P, config)`` (``tools/book.py plan``, torchrun) is reused."""
    return fit_or_resume(config, run_dir(P, config))


def _fit_quietly(config: TrainConfig, out: Path) -> Path:
    return fit_or_resume(config, out, progress=False)


# Per-step work that does not grow with the model (data, optimizer, dispatch), in the
# units of models.flops_per_second: fitted to the laptop book's 1-thread training times
# (lap-student 75 s ... lap-l 606 s for 800 steps) so that longest-first means longest.
STEP_OVERHEAD_FLOPS = 28e6


def _cost(config: TrainConfig, teacher: TrainConfig | None = None) -> float:
    """A run's relative time, to start the longest first: forward FLOPs plus a fixed
    overhead per step, and a third of the FLOPs of ``teacher`` (a forward pass only), the
    teacher whose outputs it computes (None when it reads them from the cache)."""
    window = config.past_s + config.window_s + config.future_s

    def flops(c: TrainConfig) -> float:
        return models.flops_per_second(models.resolve(c.preset, **c.model), window)

    extra = flops(teacher) / 3 if teacher else 0.0
    return (flops(config) + extra + STEP_OVERHEAD_FLOPS) * config.steps


def train_many(P: Profile, configs: list[TrainConfig]) -> list[Path]:
    """Train every config not in the cache yet, ``P.train.jobs`` at a time, longest first;
    the run directories, in the order of ``configs``.

    A distilled run waits for its teacher when the teacher is among them; distilled runs
    that read the same teacher outputs from the cache wait for the first of them, which
    computes the outputs once instead of each run computing them again."""
    dirs = [run_dir(P, c) for c in configs]
    todo = {d: c for c, d in zip(configs, dirs, strict=True) if not (d / "done.json").is_file()}
    first: dict[tuple, Path] = {}
    needs: dict[Path, Path] = {}  # run -> the run it waits for
    readers: set[Path] = set()  # runs that read teacher outputs another run computes
    for d, c in todo.items():
        key = _teacher_outputs_key(c)
        if key and first.setdefault(key, d) != d:
            needs[d] = first[key]
            readers.add(d)
        elif c.teacher and Path(c.teacher) in todo:
            needs[d] = Path(c.teacher)

    def teacher(c: TrainConfig) -> TrainConfig | None:
        """``c``'s teacher's configuration: read before it is trained when it trains here."""
        if not c.teacher:
            return None
        known = (Path(c.teacher) / "config.json").is_file()
        return todo.get(Path(c.teacher)) or (run_config(c.teacher) if known else None)

    cost = {d: _cost(c, None if d in readers else teacher(c)) for d, c in todo.items()}
    order = sorted(todo, key=lambda d: -cost[d])
    index = {d: i for i, d in enumerate(order)}
    after = [index[needs[d]] if d in needs else None for d in order]
    parallel = P.train.jobs > 1 and len(todo) > 1
    fn, n_jobs = (_fit_quietly, P.train.jobs) if parallel else (fit_or_resume, 1)
    jobs.run_jobs(fn, [(todo[d], d) for d in order], n_jobs, "train", after)
    return dirs


def _teacher_outputs_key(config: TrainConfig) -> tuple | None:
    """What decides the teacher outputs a cached distillation run reads (None: no cache)."""
    if not (config.teacher and config.teacher_cache):
        return None
    c = config
    data = (c.data_dir, c.split, c.order_seed(), c.steps, c.batch_size)
    return (c.teacher, c.teacher_cache, *data, c.window_s, c.past_s, c.future_s, c.augment)


def personalize_job(
    run_dir: Path, data: Path, split: str, out: Path, steps: int, lr: float
) -> None:
    """Fine-tune ``run_dir`` on ``split`` of ``data`` into ``out``; its test result to
    ``out/eval.json``."""
    _, result = personalize(run_dir, data, split, out, steps, lr, progress=False)
    result.save(out / "eval.json")


def personalize_many(P: Profile, runs: list[Path], users: list[str]) -> None:
    """Fine-tune each generic run on each user's own sessions (cached), ``P.train.jobs``
    at a time, the largest models first; :func:`measured.personalized` reads the results."""
    todo = []
    for r in sorted(runs, key=lambda r: -_cost(run_config(r))):
        steps, lr = personal_recipe(P, r)
        for u in users:
            out = personal_dir(P, r, u)
            if not (out / "eval.json").is_file():
                todo.append((r, prepare_corpus(P), personal_split(P, u), out, steps, lr))
    jobs.run_jobs(personalize_job, todo, P.train.jobs, "personalize")


def evaluate_test(P: Profile, run_dir: Path, split: str | None = None) -> None:
    """Evaluate a run on its split's test sessions unless cached; read with
    :func:`measured.cross_user`."""
    split = split or P.corpus.split
    path = test_eval_path(run_dir, split)
    if not path.is_file():
        evaluate(run_dir, prepare_corpus(P), split, part="test").save(path)


def evaluate_tests(P: Profile, runs: list[Path]) -> None:
    """:func:`evaluate_test` of each run, one after the other in this process."""
    for r in runs:
        evaluate_test(P, r)


def decode(P: Profile, run_dir: Path, split: str, decoders: list[Decoder]) -> None:
    """``run_dir``'s test error rates under each decoder not cached yet, beside its greedy
    eval; the missing decoders share one pass of the model over the test set. Read with
    :func:`measured.decoded`."""
    paths = decoded_paths(run_dir, split, decoders)
    missing = [(d, p) for d, p in zip(decoders, paths, strict=True) if not p.is_file()]
    if missing:
        model, sessions, config = model_and_paths(run_dir, prepare_corpus(P), split, "test")
        results = evaluate_decoders(model, sessions, config, [d for d, _ in missing])
        for (_, path), result in zip(missing, results, strict=True):
            result.save(path)


# Table 2's decoders beside greedy: emg2qwerty's beam search (width 50, LM weight 2,
# insertion bonus 2), without and with the shipped character 6-gram. Keys below log p -8
# on a frame are not tried: on untrained-model output that saves nothing (about 2.5 CPU
# s per sEMG minute either way), on trained-like output it cuts beam+LM from 2.4 to 0.25 s
# per minute with the same text (tools/bench_beam.py's "peaky" emissions, 2 seeds).
TABLE2_MIN_LOG_PROB = -8.0
TABLE2_DECODERS = {
    "beam": Decoder("beam", beam=50, min_log_prob=TABLE2_MIN_LOG_PROB),
    "beam+LM": Decoder("beam", beam=50, lm="default", min_log_prob=TABLE2_MIN_LOG_PROB),
}
# The columns above use semgkit's search rule; beam+LM is decoded once more, cross-user
# only, under emg2qwerty's (exactly its decode_batch, which knows no floor, so every frame
# extends every prefix: decode.beam_search's docstring says how the rules differ).
TABLE2_EMG2QWERTY = {
    "beam+LM (emg2qwerty rule)": Decoder("beam", beam=50, lm="default", rule="emg2qwerty"),
}


def _threaded(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on ``threads`` threads (a worker process starts with one per core)."""
    if threads:
        torch.set_num_threads(threads)
    return fn(*args)


def evaluate_many(P: Profile, runs: list[Path], users: list[str]) -> None:
    """Table 2's evaluations not in the cache yet, ``P.train.jobs`` at a time: greedy
    cross-user for every run, and :data:`TABLE2_DECODERS` on each preset's first seed,
    cross-user and fine-tuned per user. Personalized greedy results come with the
    fine-tuning (:func:`personalize_many`)."""
    decoders, threads = list(TABLE2_DECODERS.values()), int(P.train.num_threads)
    generic = decoders + list(TABLE2_EMG2QWERTY.values())
    first = {run_config(r).preset: r for r in reversed(runs)}.values()
    todo = [
        (threads, decode, P, d, split, chosen)
        for r in first
        for d, split, chosen in [(r, P.corpus.split, generic)]
        + [(personal_dir(P, r, u), personal_split(P, u), decoders) for u in users]
        if not all(p.is_file() for p in decoded_paths(d, split, chosen))
    ]
    todo += [
        (threads, evaluate_test, P, r)
        for r in runs
        if not test_eval_path(r, P.corpus.split).is_file()
    ]
    jobs.run_jobs(_threaded, todo, P.train.jobs, "evaluate")
