"""The book's table-level runs, cached on disk by a hash of their full configuration.

A run's cache key hashes its resolved :class:`~semgkit.runs.TrainConfig` together with
the library's source code and the torch/numpy versions, so a changed configuration or a
code change never reuses a stale result, while re-executing the book after a prose edit
finds every run done. An interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from semgkit import lm, models, paper, synth
from semgkit.data import load_split, personal_splits
from semgkit.decoders import Decoder
from semgkit.evaluate import evaluate, evaluate_decoders, model_and_paths
from semgkit.repro import jobs, uncertainty
from semgkit.repro.cache import config_key
from semgkit.repro.profiles import Profile
from semgkit.repro.uncertainty import estimate
from semgkit.runs import TrainConfig, load_run, run_config
from semgkit.train import fit_or_resume, personalize


@functools.cache
def prepare_corpus(P: Profile) -> Path:
    """The profile's data directory; the synthetic corpus is generated on first use.

    Derived once per profile and process: every later call returns the same path."""
    root = P.corpus_dir()
    if P.corpus.source == "synthetic":
        return synth.generate(root, preset=P.corpus.preset, seed=P.seed)
    split = P.corpus.split
    if not (root / "splits" / f"{split}.yaml").is_file():
        raise FileNotFoundError(
            f"{root}: no emg2qwerty data with splits/{split}.yaml here (profile {P.name}); "
            f"download it with `python -m data_download emg2qwerty --dest {root} --split "
            f"{split}` and pass DATA={root}"
        )
    return root


def peak_lr(P: Profile, preset: str) -> float:
    """The preset's peak learning rate under the profile.

    With ``train.lr_width_product`` set, a transformer of width ``d_model`` gets
    ``min(train.lr, lr_width_product / d_model)``: Adam's best rate falls roughly as
    1/width (as in muP), so one rate for every size over-drives the wide models; the cap
    keeps the narrowest ones from collapsing to all-blank CTC output. Models without a
    width (the TDS-ConvNet) and profiles without the key use ``train.lr``."""
    t = P.train
    config = models.PRESETS.get(preset)
    if t.lr_width_product and isinstance(config, models.ModelConfig):
        return min(float(t.lr), float(t.lr_width_product) / config.d_model)
    return float(t.lr)


def train_config(P: Profile, preset: str, **overrides: Any) -> TrainConfig:
    """The profile's training recipe for one preset; overrides win."""
    w, t = P.window, P.train
    base = TrainConfig(
        data_dir=str(prepare_corpus(P)),
        split=P.corpus.split,
        preset=preset,
        steps=int(t.steps),
        batch_size=int(t.batch_size),
        accumulate=int(t.accumulate),
        lr=peak_lr(P, preset),
        window_s=float(w.window_s),
        past_s=float(w.past_s),
        future_s=float(w.future_s),
        seed=int(P.seed),
        data_seed=int(P.seed),  # a run's other seeds vary its weights, not its data
        num_threads=int(t.num_threads),
        num_workers=int(t.num_workers),
        checkpoint_every=max(50, int(t.steps) // 4),
        val_windows=int(t.val_windows),
    )
    return replace(base, **overrides)


def run_dir(P: Profile, config: TrainConfig) -> Path:
    """Where the book keeps (or looks for) the run of ``config``."""
    return P.build_dir / "cache" / "runs" / f"{config.preset}-{config_key(config)}"


def run(P: Profile, config: TrainConfig) -> Path:
    """Train ``config`` once; later calls with the same config and code return the cached run.

    An interrupted ``make book`` resumes each run from its last checkpoint. A run trained
    elsewhere into ``run_dir(P, config)`` (``tools/book.py plan``, torchrun) is reused."""
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
    """Train every config not in the cache yet, ``P.train.jobs`` at a time, longest first
    (:mod:`semgkit.repro.jobs`); the run directories, in the order of ``configs``.

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
    return (c.teacher, c.teacher_cache, c.data_dir, c.split, c.order_seed(), c.steps,
            c.batch_size, c.window_s, c.past_s, c.future_s, c.augment)  # fmt: skip


def scaling_configs(P: Profile) -> list[TrainConfig]:
    """Table 2's generic runs: each ladder model and the baseline, with each of its seeds."""
    presets = [*P.scaling.ladder, P.scaling.baseline]
    return [train_config(P, p, seed=s) for p in presets for s in P.model_seeds(p)]


def train_seconds(run_dir: Path) -> float:
    return float(json.loads((run_dir / "done.json").read_text())["train_seconds"])


def cross_user(P: Profile, run_dir: Path, split: str | None = None) -> dict[str, Any]:
    """Pooled error rates of a run on its split's test sessions (cached): the held-out
    users' (cross-user) or, in the single-user setting, the training user's own."""
    split = split or P.corpus.split
    path = run_dir / f"eval-{split}-test.json"
    if not path.is_file():
        evaluate(run_dir, prepare_corpus(P), split, part="test").save(path)
    return json.loads(path.read_text())


def test_users(P: Profile) -> list[str]:
    """The users fine-tuned on their own sessions: the split's held-out test users (the
    first ``personalize_users``); none in the single-user setting, trained on its user."""
    if P.measure() == "single-user":
        return []
    users = list(load_split(prepare_corpus(P), P.corpus.split).test_users)
    limit = P.train.personalize_users
    return users[:limit] if limit else users


def personal_split(P: Profile, user: str) -> str:
    """The name of test user ``user``'s personalized split."""
    data = prepare_corpus(P)
    splits = personal_splits(data)
    if user not in splits:
        raise KeyError(f"{data}/splits: no personalized split for test user {user!r}")
    return splits[user]


def personal_recipe(P: Profile, run_dir: Path) -> tuple[int, float]:
    """(steps, learning rate) of fine-tuning the generic run ``run_dir`` on one user."""
    lr = run_config(run_dir).lr * float(P.train.personalize_lr_fraction)
    return int(P.train.personalize_steps), lr


def personal_dir(P: Profile, run_dir: Path, user: str) -> Path:
    """Where the book keeps the generic run fine-tuned on ``user``'s own sessions."""
    steps, lr = personal_recipe(P, run_dir)
    key = config_key(run_config(run_dir), {"user": user, "steps": steps, "lr": lr})
    return run_dir.parent.parent / "personal" / f"{run_dir.name}-{personal_split(P, user)}-{key}"


def personalize_job(
    run_dir: Path, data: Path, split: str, out: Path, steps: int, lr: float
) -> None:
    """Fine-tune ``run_dir`` on ``split`` of ``data`` into ``out``; its test result to
    ``out/eval.json``."""
    _, result = personalize(run_dir, data, split, out, steps, lr, progress=False)
    result.save(out / "eval.json")


def personalize_many(P: Profile, runs: list[Path], users: list[str]) -> None:
    """Fine-tune each generic run on each user's own sessions (cached), ``P.train.jobs``
    at a time, the largest models first; :func:`personalized` then reads the results."""
    todo = []
    for r in sorted(runs, key=lambda r: -_cost(run_config(r))):
        steps, lr = personal_recipe(P, r)
        for u in users:
            out = personal_dir(P, r, u)
            if not (out / "eval.json").is_file():
                todo.append((r, prepare_corpus(P), personal_split(P, u), out, steps, lr))
    jobs.run_jobs(personalize_job, todo, P.train.jobs, "personalize")


def personalized(P: Profile, run_dir: Path, user: str) -> dict[str, Any]:
    """Fine-tune the generic run on ``user``'s own sessions; that user's test error rates."""
    personalize_many(P, [run_dir], [user])
    return json.loads((personal_dir(P, run_dir, user) / "eval.json").read_text())


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


def cer_column(setting: str, decoder: str) -> str:
    """Table 2's column of ``setting`` (cross-user, personalized) CER under ``decoder``."""
    return f"{setting} CER %" if decoder == "greedy" else f"{setting} CER % {decoder}"


def measure_of(table: pd.DataFrame) -> str:
    """What a Table 2 or 3 measures: ``single-user`` (a run tested on its own training
    user) when its columns say so, else ``cross-user``."""
    return "single-user" if "single-user CER %" in table.columns else "cross-user"


def decoder_key(decoder: Decoder) -> str:
    """Names a decoder's cached results: its settings and its LM file's content (the code
    that decodes is already in the key of the run directory the results sit in)."""
    lm_file = {"none": None, "default": lm.DEFAULT_ASSET}.get(decoder.lm, Path(decoder.lm))
    lm_hash = hashlib.sha256(lm_file.read_bytes()).hexdigest() if lm_file else ""
    payload = json.dumps([decoder.settings(), lm_hash], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def decoded(P: Profile, run_dir: Path, split: str, decoders: list[Decoder]) -> list[dict[str, Any]]:
    """``run_dir``'s test error rates under each decoder, cached beside its greedy eval.

    The decoders missing from the cache share one pass of the model over the test set."""
    paths = _decoded_paths(run_dir, split, decoders)
    missing = [(d, p) for d, p in zip(decoders, paths, strict=True) if not p.is_file()]
    if missing:
        model, sessions, config = model_and_paths(run_dir, prepare_corpus(P), split, "test")
        results = evaluate_decoders(model, sessions, config, [d for d, _ in missing])
        for (_, path), result in zip(missing, results, strict=True):
            result.save(path)
    return [json.loads(p.read_text()) for p in paths]


def _decoded_paths(run_dir: Path, split: str, decoders: list[Decoder]) -> list[Path]:
    return [run_dir / f"eval-{split}-test-{decoder_key(d)}.json" for d in decoders]


def _threaded(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on ``threads`` threads (a worker process starts with one per core)."""
    if threads:
        torch.set_num_threads(threads)
    return fn(*args)


def evaluate_many(P: Profile, runs: list[Path], users: list[str]) -> None:
    """Table 2's evaluations not in the cache yet, ``P.train.jobs`` at a time: greedy
    cross-user for every run, and :data:`TABLE2_DECODERS` on each preset's first seed,
    cross-user and fine-tuned per user. :func:`cross_user` and :func:`decoded` then read
    them. Personalized greedy results come with the fine-tuning (:func:`personalize_many`)."""
    decoders, threads = list(TABLE2_DECODERS.values()), int(P.train.num_threads)
    generic = decoders + list(TABLE2_EMG2QWERTY.values())
    first = {run_config(r).preset: r for r in reversed(runs)}.values()
    todo = [
        (threads, decoded, P, d, split, chosen)
        for r in first
        for d, split, chosen in [(r, P.corpus.split, generic)]
        + [(personal_dir(P, r, u), personal_split(P, u), decoders) for u in users]
        if not all(p.is_file() for p in _decoded_paths(d, split, chosen))
    ]
    todo += [
        (threads, cross_user, P, r)
        for r in runs
        if not (r / f"eval-{P.corpus.split}-test.json").is_file()
    ]
    jobs.run_jobs(_threaded, todo, P.train.jobs, "evaluate")


def decoder_columns(P: Profile, run_dir: Path, users: list[str]) -> dict[str, float]:
    """Table 2's CER under :data:`TABLE2_DECODERS`, cross-user and personalized, under
    :data:`TABLE2_EMG2QWERTY` on the test set, and the CPU seconds each takes per minute of sEMG
    on that test set (one thread)."""
    names, decoders = list(TABLE2_DECODERS), list(TABLE2_DECODERS.values())
    generic = decoded(P, run_dir, P.corpus.split, decoders + list(TABLE2_EMG2QWERTY.values()))
    personal = [
        decoded(P, personal_dir(P, run_dir, user), personal_split(P, user), decoders)
        for user in users
    ]
    out: dict[str, float] = {}
    for k, name in enumerate(names):
        out[cer_column(P.measure(), name)] = round(generic[k]["overall"]["CER"], 2)
        if users:
            out[cer_column("personalized", name)] = round(pooled_cer([p[k] for p in personal]), 2)
    for k, name in enumerate(TABLE2_EMG2QWERTY, start=len(names)):
        out[cer_column(P.measure(), name)] = round(generic[k]["overall"]["CER"], 2)
    for k, name in enumerate([*names, *TABLE2_EMG2QWERTY]):
        t = generic[k]["decoding"]
        out[f"{name} CPU s per sEMG min"] = round(
            t["cpu_seconds"] / max(t["semg_minutes"], 1e-9), 2
        )
    return out


def pooled_cer(results: list[dict[str, Any]]) -> float:
    """CER pooled over several evaluations: total edits over total target characters."""
    counts = [_edits(r["overall"]) for r in results]
    edits, chars = sum(c["edits"] for c in counts), sum(c["chars"] for c in counts)
    return 100.0 * edits / max(chars, 1)


def _edits(counts: dict[str, Any]) -> dict[str, int]:
    """Edits and characters of one group: the unit the bootstrap resamples."""
    edits = counts["insertions"] + counts["deletions"] + counts["substitutions"]
    return {"edits": edits, "chars": counts["chars"]}


def user_groups(result: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per held-out user edits and characters of an evaluation's result."""
    return {u: _edits(c) for u, c in result["per_user"].items()}


def personal_groups(users: list[str], results: list[list[dict[str, Any]]]) -> list[dict]:
    """Per seed, each user's edits and characters after fine-tuning on that user."""
    return [{u: _edits(r["overall"]) for u, r in zip(users, rs, strict=True)} for rs in results]


def seeded_runs(P: Profile, preset: str, seeds: tuple[int, ...]) -> list[Path]:
    """One run of ``preset`` per training seed; the corpus stays the profile's."""
    return [run(P, train_config(P, preset, seed=s)) for s in seeds]


def protocol(results: list[dict[str, Any]]) -> str:
    """The evaluation protocol behind a table's CER columns (one per row, never mixed)."""
    protocols = {r["protocol"] for r in results}
    if len(protocols) != 1:
        raise ValueError(f"CER columns mix evaluation protocols {sorted(protocols)}")
    return protocols.pop()


def _family(preset: str) -> str:
    return "tds" if preset.startswith("tds") else "transformer"


def scaling(P: Profile) -> pd.DataFrame:
    """Table 2: each ladder model and the baseline, cross-user and personalized CER (in
    the single-user setting: the CER on the training user's own test sessions); the
    paper's columns only where its protocol is the profile's (``P.paper_protocol``)."""
    users = test_users(P)
    configs = scaling_configs(P)
    runs = train_many(P, configs)
    personalize_many(P, runs, users)
    evaluate_many(P, runs, users)
    rows = []
    for preset in [*P.scaling.ladder, P.scaling.baseline]:
        seeded = [r for c, r in zip(configs, runs, strict=True) if c.preset == preset]
        model, config = load_run(seeded[0])
        generic_results = [cross_user(P, r) for r in seeded]
        personal_results = [[personalized(P, r, u) for u in users] for r in seeded]
        generic = [user_groups(g) for g in generic_results]
        personal = personal_groups(users, personal_results)
        reported = paper.TABLE2.get(preset) if P.paper_protocol() else None
        personal_columns = uncertainty.columns("personalized", estimate(personal)) if users else {}
        paper_columns = {
            "params (paper)": reported.params if reported else "",
            "cross-user CER % (paper)": reported.cross_user_cer if reported else None,
            "personalized CER % (paper)": reported.personalized_cer if reported else None,
        }
        rows.append(
            {
                "preset": preset,
                "family": _family(preset),
                "parameters": models.count_params(model),
                "peak lr": config.lr,
                "train s": round(float(np.mean([train_seconds(r) for r in seeded])), 1),
                "seeds": len(seeded),
                **uncertainty.columns(P.measure(), estimate(generic)),
                **personal_columns,
                **decoder_columns(P, seeded[0], users),  # the first seed's run
                "personalized users": len(users),
                "CER protocol": protocol(generic_results + sum(personal_results, [])),
                **(paper_columns if P.paper_protocol() else {}),
            }
        )
    return pd.DataFrame(rows)


def distilled_config(
    P: Profile, teacher_run: Path, temperature: float, alpha: float, **overrides: Any
) -> TrainConfig:
    """The student trained with the teacher's softened outputs, at the same budget as alone."""
    return train_config(
        P,
        P.distill.student,
        teacher=str(teacher_run),
        temperature=float(temperature),
        alpha=float(alpha),
        teacher_cache=True,
        **overrides,
    )


def distilled_runs(
    P: Profile, teacher_run: Path, temperature: float, alpha: float, seeds: tuple[int, ...]
) -> list[Path]:
    return [run(P, distilled_config(P, teacher_run, temperature, alpha, seed=s)) for s in seeds]


def teacher_config(P: Profile) -> TrainConfig:
    """The teacher every student learns from: the first seed's run of the teacher preset."""
    return train_config(P, P.distill.teacher, seed=P.model_seeds(P.distill.teacher)[0])


def planned_configs(P: Profile) -> list[TrainConfig]:
    """Every generic and distillation run of chapters 3 and 4, teachers before students.

    Personalization runs are left out: they start from these and are short."""
    s, d = P.scaling, P.distill
    configs = [teacher_config(P)]
    configs += [
        train_config(P, p, seed=seed)
        for p in [*s.ladder, s.baseline, d.teacher]
        for seed in P.model_seeds(p)
    ]
    configs += [train_config(P, d.student, seed=seed) for seed in P.student_seeds()]
    teacher = run_dir(P, configs[0])
    pairs = [(d.temperature, d.alpha, seed) for seed in P.student_seeds()]
    pairs += [(t, d.alpha, seed) for t in d.temperatures for seed in P.seeds()]
    pairs += [(d.temperature, a, seed) for a in d.alphas for seed in P.seeds()]
    configs += [distilled_config(P, teacher, t, a, seed=seed) for t, a, seed in pairs]
    unique = {config_key(c): c for c in configs}  # insertion order: teachers first
    return list(unique.values())


def _row(
    P: Profile, role: str, seeded: list[Path], personal: bool = False, **extra: Any
) -> dict[str, Any]:
    """A Table 3 row; ``personal`` adds the CER after fine-tuning on each test user."""
    model, config = load_run(seeded[0])
    results = [cross_user(P, r) for r in seeded]
    cer = uncertainty.columns(P.measure(), estimate([user_groups(x) for x in results]))
    users = test_users(P) if personal else []
    if users:
        personalize_many(P, seeded, users)
        per_user = [[personalized(P, r, u) for u in users] for r in seeded]
        cer |= uncertainty.columns("personalized", estimate(personal_groups(users, per_user)))
        results += sum(per_user, [])
    return {
        "role": role,
        "preset": config.preset,
        "parameters": models.count_params(model),
        **extra,
        "train s": round(float(np.mean([train_seconds(r) for r in seeded])), 1),
        "seeds": len(seeded),
        **cer,
        "CER protocol": protocol(results),
    }


def distillation(P: Profile) -> dict[str, pd.DataFrame]:
    """Table 3 (teacher, student alone, student distilled) and the T and alpha sweeps."""
    d = P.distill
    teachers = seeded_runs(P, d.teacher, P.model_seeds(d.teacher))
    teacher = teachers[0]  # = run_dir(P, teacher_config(P)): the students' teacher
    distilled = [c for c in planned_configs(P) if c.teacher]
    students = [train_config(P, d.student, seed=s) for s in P.student_seeds()]
    # every distilled run sees the same windows (one data seed): the first to train fills
    # the teacher's output cache, the others start when it is done (train_many)
    alone = train_many(P, [*students, *distilled])[: len(students)]
    headline = distilled_runs(P, teacher, d.temperature, d.alpha, P.student_seeds())
    table3 = pd.DataFrame(
        [
            _row(P, "teacher", teachers, personal=True),
            _row(P, "student alone", alone, personal=True),
            _row(
                P,
                "student distilled",
                headline,
                personal=True,
                temperature=d.temperature,
                alpha=d.alpha,
            ),  # fmt: skip
        ]
    )
    if P.paper_protocol():
        table3["cross-user CER % (paper)"] = table3["role"].map(paper.TABLE3_CER)
        table3["personalized CER % (paper)"] = table3["role"].map(paper.TABLE3_PERSONALIZED_CER)
        table3["params (paper)"] = table3["role"].map(paper.TABLE3_PARAMS)
        table3["CER % bound (derived from the paper's claim)"] = table3["role"].map(
            {"student distilled": paper.TABLE3_DISTILLED_BOUND}
        )

    def sweep(pairs: list[tuple[float, float]]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                _row(
                    P,
                    "student distilled",
                    distilled_runs(P, teacher, t, a, P.seeds()),
                    temperature=t,
                    alpha=a,
                )
                for t, a in pairs
            ]
        )

    temps = sweep([(t, d.alpha) for t in d.temperatures])
    alphas = sweep([(d.temperature, a) for a in d.alphas])
    return {"table3_distillation": table3, "table3_temperature": temps, "table3_alpha": alphas}
