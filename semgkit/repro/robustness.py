"""The robustness chapter's tables: stress curves and unseen populations, from cached runs.

Neither trains anything of its own: both evaluate the runs chapters 3 and 4 trained.

* A stress curve scores a run's cross-user test set under a perturbation
  (`semgkit.perturb`) at each severity of the profile's ``[robustness]`` section, for the
  teacher, the student alone, the distilled student and the TDS-ConvNet baseline.
* The population table scores each ladder model on users drawn from held-out populations
  (`semgkit.populations`). Their sessions are written beside the corpus with
  ``populations_only``: the training sessions would be the corpus's own, byte for byte.

Each evaluation is cached in its run's directory, keyed by what it scored (perturbation
spec and seed, or the population corpus's recipe); a run directory's name already keys
the code. Outside the run and bench cache keys.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import torch

from semgkit import models, perturb, populations, synth
from semgkit.data import load_split
from semgkit.evaluate import evaluate, evaluate_model, model_and_paths
from semgkit.repro import jobs, measured, paper_tables, recipes, schedule, uncertainty
from semgkit.repro.claims import judge
from semgkit.repro.profiles import Profile
from semgkit.runs import load_run, run_config

FLAG = "profile [robustness] severities"
CLEAN = "clean"


def severity_spec(kind: str, severity: float) -> str:
    """``("noise:snr", 10)`` -> ``"noise:snr=10"``, a `semgkit.perturb` spec."""
    return f"{kind}={severity:g}"


def curve_runs(P: Profile) -> dict[str, Path]:
    """The four models of the stress curves (first seeds), trained if not cached yet."""
    d, first = P.distill, P.student_seeds()[0]
    teacher = recipes.teacher_config(P)
    configs = {
        "teacher": teacher,
        "student alone": recipes.train_config(P, d.student, seed=first),
        "student distilled": recipes.distilled_config(
            P, recipes.run_dir(P, teacher), d.temperature, d.alpha, seed=first
        ),
        "baseline": recipes.train_config(
            P, P.scaling.baseline, seed=P.model_seeds(P.scaling.baseline)[0]
        ),
    }
    return dict(zip(configs, schedule.train_many(P, list(configs.values())), strict=True))


def _stress_path(P: Profile, model_dir: Path, spec: str, split: str | None = None) -> Path:
    split = split or P.corpus.split
    key = hashlib.sha256(json.dumps([spec, P.seed]).encode()).hexdigest()[:12]
    return model_dir / f"eval-{split}-test-stress-{key}.json"


def stress(P: Profile, model_dir: Path, specs: list[str], split: str | None = None) -> None:
    """Score ``model_dir`` on ``split``'s test part under each of ``specs`` not cached yet
    (seeded by the profile), loading the model and the split once for all of them."""
    missing = [s for s in specs if not _stress_path(P, model_dir, s, split).is_file()]
    if not missing:
        return
    data = recipes.prepare_corpus(P)
    model, paths, config = model_and_paths(model_dir, data, split or P.corpus.split, "test")
    for spec in missing:
        perturbation = perturb.parse([spec], seed=P.seed, flag=FLAG)
        result = evaluate_model(model, paths, config, protocol="session", perturbation=perturbation)
        result.save(_stress_path(P, model_dir, spec, split))


def stressed(P: Profile, model_dir: Path, spec: str, split: str | None = None) -> dict[str, Any]:
    """``model_dir``'s result on ``split``'s test part under ``spec``, as :func:`stress`
    cached it: a generic run on the cross-user test set, or a fine-tuned one on its user's."""
    return measured.read_result(_stress_path(P, model_dir, spec, split), f"{__name__}.stress")


def _personal(P: Profile, run_dir: Path, users: list[str]) -> list[tuple[Path, str]]:
    """(fine-tuned run, its split) of ``run_dir`` per user: Tables 2 and 3's caches."""
    return [(recipes.personal_dir(P, run_dir, u), recipes.personal_split(P, u)) for u in users]


def _job(threads: int, fn: Any, *args: Any) -> Any:
    if threads:  # 0: torch's default, as in TrainConfig
        torch.set_num_threads(threads)
    return fn(*args)


def run_missing(P: Profile, todo: list[tuple], desc: str) -> None:
    """Each ``(fn, *args)`` of ``todo``, ``train.jobs`` at a time on ``num_threads`` each."""
    threads = int(P.train.num_threads)
    jobs.run_jobs(_job, [(threads, *t) for t in todo], P.train.jobs, desc)


def _clean_missing(P: Profile, runs: list[Path]) -> list[tuple]:
    """The unperturbed cross-user evaluations not cached yet (chapter 3 usually made them)."""
    return [
        (schedule.evaluate_test, P, r)
        for r in runs
        if not (r / f"eval-{P.corpus.split}-test.json").is_file()
    ]


def stress_tables(P: Profile) -> dict[str, pd.DataFrame]:
    """One table per ``[robustness] severities`` entry: each model's CER with its 95 %
    interval, clean and at each severity, and its rise over clean; cross-user (the generic
    run on the test users) and personalized (each test user's fine-tuned run on that user,
    the users and runs of Tables 2 and 3)."""
    kinds = dict(P.robustness.severities)
    specs = [severity_spec(k, s) for k, severities in kinds.items() for s in severities]
    for s in specs:
        perturb.parse([s], flag=FLAG)  # a bad entry fails here, before any run or evaluation
    runs = curve_runs(P)
    users = recipes.test_users(P)
    schedule.personalize_many(P, list(runs.values()), users)  # cached by chapters 3 and 4
    todo = [  # one job per model: it is loaded once for every severity
        (stress, P, d, specs, split)
        for r in runs.values()
        for d, split in [(r, P.corpus.split), *_personal(P, r, users)]
        if not all(_stress_path(P, d, s, split).is_file() for s in specs)
    ]
    run_missing(P, todo + _clean_missing(P, list(runs.values())), "stress")
    tables = {}
    for kind, severities in kinds.items():
        rows = []
        for role, r in runs.items():
            personal = _personal(P, r, users)
            clean = (
                measured.cross_user(P, r),
                [measured.personalized(P, r, u) for u in users],
            )
            results = [(CLEAN, clean)]
            for severity in severities:
                spec = severity_spec(kind, severity)
                shifted = [stressed(P, d, spec, split) for d, split in personal]
                results.append((f"{severity:g}", (stressed(P, r, spec), shifted)))
            for label, (generic, per_user) in results:
                e = uncertainty.estimate([paper_tables.user_groups(generic)])
                e_p = uncertainty.estimate(paper_tables.personal_groups(users, [per_user]))
                rows.append(
                    {
                        "model": role,
                        "preset": run_config(r).preset,
                        "perturbation": kind
                        if label == CLEAN
                        else severity_spec(kind, float(label)),
                        "severity": label,
                        **uncertainty.columns("cross-user", e),
                        "CER rise": round(e.cer - clean[0]["overall"]["CER"], 2),
                        **uncertainty.columns("personalized", e_p),
                        "personalized CER rise": round(
                            e_p.cer - paper_tables.pooled_cer(clean[1]), 2
                        ),
                        "personalized users": len(users),
                        "CER protocol": paper_tables.protocol([generic, *per_user]),
                    }
                )
        tables[f"robustness_{kind.replace(':', '_')}"] = pd.DataFrame(rows)
    return tables


def population_corpus(P: Profile) -> Path | None:
    """The held-out populations' sessions for the profile's synthetic corpus (written once,
    beside it); None for real data, which has no populations to draw."""
    if P.corpus.source != "synthetic" or not P.robustness.populations:
        return None
    chosen = tuple(
        replace(populations.POPULATIONS[name], users=P.robustness.population_users)
        for name in P.robustness.populations
    )
    config = replace(
        synth.CORPUS_PRESETS[P.corpus.preset], populations=chosen, populations_only=True
    )
    root = P.corpus_dir()
    return synth.generate(
        root.with_name(root.name + "-populations"), config, P.seed, progress=False
    )


def _held_out_path(run_dir: Path, corpus: Path, name: str) -> Path:
    key = hashlib.sha256((corpus / synth.MARKER).read_bytes()).hexdigest()[:12]
    return run_dir / f"eval-holdout-{name}-{key}-test.json"


def evaluate_held_out(run_dir: Path, corpus: Path, name: str) -> None:
    """Score ``run_dir`` on population ``name``'s held-out users (whole sessions), unless
    cached already."""
    path = _held_out_path(run_dir, corpus, name)
    if not path.is_file():
        evaluate(run_dir, corpus, f"holdout-{name}", "test").save(path)


def held_out(run_dir: Path, corpus: Path, name: str) -> dict[str, Any]:
    """``run_dir`` on population ``name``'s held-out users, as :func:`evaluate_held_out`
    cached it."""
    path = _held_out_path(run_dir, corpus, name)
    return measured.read_result(path, f"{__name__}.evaluate_held_out")


def population_table(P: Profile) -> pd.DataFrame | None:
    """Per ladder model and the baseline (first seeds): CER on the training population's
    held-out users and on each held-out population's, with intervals and the gap."""
    corpus = population_corpus(P)
    if corpus is None:
        return None
    presets = [*P.scaling.ladder, P.scaling.baseline]
    configs = [recipes.train_config(P, p, seed=P.model_seeds(p)[0]) for p in presets]
    runs = schedule.train_many(P, configs)
    names = list(P.robustness.populations)
    todo = [
        (evaluate_held_out, r, corpus, n)
        for r in runs
        for n in names
        if not _held_out_path(r, corpus, n).is_file()
    ]
    run_missing(P, todo + _clean_missing(P, runs), "populations")
    rows = []
    for preset, r in zip(presets, runs, strict=True):
        model, _ = load_run(r)
        inside = uncertainty.estimate([paper_tables.user_groups(measured.cross_user(P, r))])
        row = {
            "preset": preset,
            "family": "tds" if preset.startswith("tds") else "transformer",
            "parameters": models.count_params(model),
            **uncertainty.columns("in-population", inside),
        }
        for n in names:
            e = uncertainty.estimate([paper_tables.user_groups(held_out(r, corpus, n))])
            row |= uncertainty.columns(n, e) | {f"{n} gap": round(e.cer - inside.cer, 2)}
        rows.append(row | {"held-out users per population": P.robustness.population_users})
    return pd.DataFrame(rows)


RISES = {"cross-user": "CER rise", "personalized": "personalized CER rise"}


def stress_findings(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Per perturbation, cross-user and personalized: where each model breaks (the first
    severity whose CER is above the clean CER beyond both intervals, `claims.judge`)
    and whether the distilled student's rise at the harshest severity exceeds the teacher's."""
    out = []
    for name, table in tables.items():
        for measure, rise in RISES.items():
            if f"{measure} CER %" not in table:
                continue
            breaks = []
            for role, rows in table.groupby("model", sort=False):
                estimates = [uncertainty.from_row(r, measure) for _, r in rows.iterrows()]
                broken = [
                    label
                    for label, e in zip(rows["severity"].iloc[1:], estimates[1:], strict=True)
                    if judge(estimates[0], e) == "holds"
                ]
                breaks.append(f"{role} from {broken[0]}" if broken else f"{role} never")
            out.append(
                f"{name}, {measure}: clearly worse than clean (beyond both intervals): "
                + "; ".join(breaks)
            )
            worst = table.groupby("model", sort=False)[rise].last()
            if {"teacher", "student distilled", "student alone"} <= set(worst.index):
                t, s, a = worst["teacher"], worst["student distilled"], worst["student alone"]
                kept = "no more than" if s <= t else "more than"
                out.append(
                    f"{name}, {measure}: at the harshest severity the distilled student's CER "
                    f"rises {s:+.1f} points, {kept} the teacher's {t:+.1f} (student alone {a:+.1f})"
                )
    return out


def population_findings(table: pd.DataFrame, names: list[str]) -> list[str]:
    """Per population: the smallest and largest transformer's gap to in-population users."""
    ladder = table[table["family"] == "transformer"].sort_values("parameters")
    small, large = ladder.iloc[0], ladder.iloc[-1]
    out = []
    for n in names:
        out.append(
            f"{n}: gap to in-population users {small[f'{n} gap']:+.1f} points for "
            f"{small['preset']}, {large[f'{n} gap']:+.1f} for {large['preset']}: the gap "
            + ("narrows" if large[f"{n} gap"] < small[f"{n} gap"] else "does not narrow")
            + " with scale"
        )
    return out


def rescore(P: Profile, run_dir: Path, specs: list[str]) -> dict[str, Any]:
    """``run_dir`` on the first cross-user test session under ``specs``, uncached: the
    chapter's live cell. CER, the decoded and typed text, and the seconds it took."""
    model, config = load_run(run_dir)
    path = load_split(recipes.prepare_corpus(P), P.corpus.split).test[0]
    start = time.perf_counter()
    perturbation = perturb.parse(specs, seed=P.seed)
    result = evaluate_model(model, [path], config, perturbation=perturbation)
    (row,) = result.predictions.itertuples()
    return {
        "CER": result.overall["CER"],
        "prediction": row.prediction,
        "target": row.target,
        "seconds": time.perf_counter() - start,
    }


def rescore_figure(P: Profile, role: str, run_dir: Path, spec: str) -> go.Figure:
    """:func:`rescore` of ``run_dir`` under ``spec`` as a one-bar figure whose title says
    the CER, the seconds it took and the start of the decoded text."""
    r = rescore(P, run_dir, [spec])
    fig = go.Figure(go.Bar(x=["CER %"], y=[r["CER"]]))
    fig.update_layout(
        height=300,
        yaxis=dict(range=[0, 105]),
        title=f"{role}, {spec}, one session: CER {r['CER']:.1f} % (rescored in "
        f"{r['seconds']:.1f} s); decoded {r['prediction'][:40]!r}",
    )
    return fig


def rescore_widget(
    P: Profile, runs: dict[str, Path], severities: dict[str, tuple[float, ...]], role: str
) -> Any:
    """Model, perturbation and severity controls; each change rescores one test session
    (:func:`rescore_figure`). Shown with ``notebook.show_in``, never a ``with out:`` capture."""
    import ipywidgets as widgets

    from semgkit.repro.notebook import show_in

    def options(name: str) -> list[str]:
        return [f"{s:g}" for s in severities[name]]

    model = widgets.Dropdown(options=list(runs), value=role, description="model")
    kind = widgets.Dropdown(options=list(severities), description="perturbation")
    level = widgets.SelectionSlider(
        options=options(kind.value), description="severity", continuous_update=False
    )
    out = widgets.Output()

    def levels(change: Any = None) -> None:
        level.options = options(kind.value)

    def show(change: Any = None) -> None:
        spec = severity_spec(kind.value, float(level.value))
        show_in(out, rescore_figure(P, model.value, runs[model.value], spec))

    kind.observe(levels, names="value")
    for control in (model, level):
        control.observe(show, names="value")
    show()
    return widgets.VBox([widgets.HBox([model, kind, level]), out])
