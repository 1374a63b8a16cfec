"""Training live in the book: what a cell is about to train and for how long, and the
playground's micro models with their loss curve and place on the ladder.

It estimates, trains through the same ``train.fit`` as every run, and draws; it decides
nothing a run computes.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from semgkit import models
from semgkit.charset import CHARSET
from semgkit.losses import ctc_loss
from semgkit.repro import measured, recipes, schedule
from semgkit.repro.profiles import Profile
from semgkit.runs import TrainConfig, build_model, run_config
from semgkit.train import fit


def step_seconds(config: TrainConfig, repeats: int = 2) -> float:
    """Measured seconds of one training step (forward, CTC, backward) of ``config``'s model
    at its batch and window size, on random input: the basis of every estimate here."""
    model = build_model(config).train()
    length = config.samples(config.past_s + config.window_s + config.future_s)
    batch = {
        "emg": torch.randn(config.batch_size, length, 2, 16),
        "input_lengths": torch.full((config.batch_size,), length),
        "targets": torch.randint(0, CHARSET.blank, (config.batch_size, 8)),
        "target_lengths": torch.full((config.batch_size,), 8),
    }
    times = []
    for _ in range(repeats + 1):
        tic = time.perf_counter()
        log_probs = model(batch["emg"], batch["input_lengths"])
        ctc_loss(log_probs, model.output_lengths(batch["input_lengths"]), batch).backward()
        times.append(time.perf_counter() - tic)
    return float(np.median(times[1:]))


def logged_step_seconds(P: Profile, config: TrainConfig) -> float | None:
    """Median seconds per step that earlier runs of the same preset and batch size logged
    in this build's cache (data reading included), or None when there are none."""
    rates = []
    for log in (P.build_dir / "cache" / "runs").glob(f"{config.preset}-*/metrics.jsonl"):
        if run_config(log.parent).batch_size == config.batch_size:
            rows = [json.loads(line) for line in log.read_text().splitlines()[1:]]
            rates += [r["windows_per_s"] for r in rows if "windows_per_s" in r]
    return config.batch_size / float(np.median(rates)) if rates else None


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def plan_line(P: Profile, config: TrainConfig, personalize_users: int = 0) -> tuple[str, float]:
    """('lap-l: cached, 0 s' or 'lap-l: 800 steps x 0.90 s (...) = 12 min', seconds) for
    one run of the book, plus ``personalize_users`` fine-tunings of it. The time per step
    is what earlier runs of the preset logged, else a step measured on random input."""
    name = config.preset + (
        f" (T={config.temperature:g}, alpha={config.alpha:g})" if config.teacher else ""
    )
    name += f" seed {config.seed}" if config.seed != P.seed else ""
    if (recipes.run_dir(P, config) / "done.json").is_file():
        return f"{name}: cached, 0 s", 0.0
    logged = logged_step_seconds(P, config) if not config.model else None
    per_step = logged or step_seconds(config)
    steps = config.steps + personalize_users * int(P.train.personalize_steps)
    seconds = steps * per_step * (1.5 if config.teacher else 1.0)
    extra = f" (with {personalize_users} personalizations)" if personalize_users else ""
    basis = "logged by earlier runs" if logged else "measured now"
    line = f"{name}: {steps} steps{extra} x {per_step:.2f} s ({basis}) = {_minutes(seconds)}"
    return line, seconds


def announce(P: Profile, configs: Sequence[TrainConfig], personalize_users: int = 0) -> float:
    """Print what the next cell is about to train and for how long (measured per-step time,
    or 'cached' for runs already on disk); returns the estimated seconds."""
    planned = [plan_line(P, c, personalize_users) for c in configs]
    times = [seconds for _, seconds in planned]
    total = float(sum(times))
    jobs = min(P.train.jobs, sum(1 for t in times if t > 0))  # cached runs take 0 s
    if (
        jobs > 1
    ):  # side by side (semgkit.repro.jobs); steps logged by such runs include the slowdown
        total /= jobs
    at_once = f", {jobs} at a time" if jobs > 1 else ""
    print(
        f"about to train {len(configs)} run(s){at_once}, estimated {_minutes(total)} on this machine:"
    )
    for line, _ in planned:
        print("  -", line)
    return total


MICRO_STEPS = 120  # a micro model's budget: about a minute on 2 laptop cores


def micro_config(
    P: Profile,
    width: int = 16,
    layers: int = 2,
    temperature: float = 2.0,
    alpha: float = 0.0,
    steps: int = MICRO_STEPS,
) -> TrainConfig:
    """The playground's micro model: the student's architecture at ``width`` and ``layers``,
    distilled from the book's teacher when ``alpha`` > 0, at a short budget."""
    base = recipes.train_config(
        P,
        P.distill.student,
        model={"d_model": int(width), "layers": int(layers), "heads": 2},
        steps=int(min(steps, P.train.steps)),
        checkpoint_every=10,  # also flushes metrics.jsonl, which the live curve reads
    )
    if alpha <= 0:
        return base
    teacher = schedule.run(P, recipes.teacher_config(P))
    kd = dict(temperature=float(temperature), alpha=float(alpha), teacher_cache=True)
    return replace(base, teacher=str(teacher), **kd)


def losses(run_dir: Path) -> tuple[list[int], list[float]]:
    """(steps, training loss) logged so far by a run."""
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    rows = [r for r in rows if "loss" in r]
    return [r["step"] for r in rows], [r["loss"] for r in rows]


def train_micro(
    P: Profile, config: TrainConfig, on_loss: Callable[[list[int], list[float]], None] | None = None
) -> tuple[Path, float, float]:
    """Train (or read from the cache) a micro run; ``on_loss(steps, losses)`` after each
    flushed checkpoint. Returns (run directory, CER % on its split's test set, seconds spent)."""
    out = recipes.run_dir(P, config)
    tic = time.perf_counter()
    if not (out / "done.json").is_file():
        if out.exists():  # an interrupted micro run: cheap, start over
            shutil.rmtree(out)

        def step(n: int) -> None:
            if on_loss and (n % config.checkpoint_every == 0 or n == config.steps):
                on_loss(*losses(out))

        fit(config, out, progress=False, on_step=step)
    schedule.evaluate_test(P, out)
    cer = measured.cross_user(P, out)["overall"]["CER"]
    return out, float(cer), time.perf_counter() - tic


def loss_figure(steps: list[int], values: list[float], total: int) -> go.Figure:
    fig = go.Figure(go.Scatter(x=steps, y=values, mode="lines+markers", name="training loss"))
    fig.update_layout(
        title=f"training loss, step {steps[-1] if steps else 0} of {total}",
        xaxis=dict(title="step", range=[0, total]),
        yaxis_title="loss (CTC, or CTC + KD)",
        height=320,
    )
    return fig


def ladder_figure(scaling: Any, micro: dict[str, Any] | None, data_note: str) -> go.Figure:
    """The cached ladder's cross-user CER against parameters, the micro model starred."""
    fig = go.Figure()
    ladder, base = scaling[scaling["family"] != "tds"], scaling[scaling["family"] == "tds"]
    for rows, mode, where, name, marker in (
        (ladder, "lines+markers+text", "top center", "transformer ladder", None),
        (
            base,
            "markers+text",
            "bottom center",
            "TDS-ConvNet",
            dict(symbol="x", size=12, color="black"),
        ),
    ):
        fig.add_scatter(
            x=rows["parameters"],
            y=rows["cross-user CER %"],
            mode=mode,
            text=rows["preset"],
            textposition=where,
            name=name,
            marker=marker,
        )
    title = "the book's ladder (cross-user CER, measured)"
    if micro:
        star = dict(symbol="star", size=20, color="gold", line=dict(width=2))
        x, y = [micro["parameters"]], [micro["cer"]]
        fig.add_scatter(x=x, y=y, mode="markers", name=micro["name"], marker=star)
        title = f"{micro['name']}: {micro['parameters']:,} parameters, cross-user CER {micro['cer']:.1f} %"
    y_title = f"cross-user CER % ({data_note}, measured)"
    fig.update_layout(
        title=title, xaxis=dict(type="log", title="parameters"), yaxis_title=y_title, height=420
    )
    return fig


def micro_summary(config: TrainConfig, cer: float) -> dict[str, Any]:
    m = config.model
    name = f"micro d_model={m['d_model']}, layers={m['layers']}"
    if config.teacher:
        name += f", T={config.temperature:g}, alpha={config.alpha:g}"
    params = models.count_params(build_model(config))
    return {"name": name, "parameters": params, "cer": cer}


def trainer_widget(P: Profile, scaling: Any, data_note: str):
    """The playground's trainer: width, layers, T and alpha sliders and a train button; a
    live loss curve, then the micro model's cross-user CER placed on the cached ladder."""
    import ipywidgets as widgets

    from semgkit.repro.notebook import show_in

    width = widgets.IntSlider(16, min=8, max=48, step=8, description="d_model")
    layers = widgets.IntSlider(2, min=1, max=3, description="layers")
    temperature = widgets.FloatLogSlider(2.0, base=2, min=-1, max=4, step=1, description="T")
    alpha = widgets.FloatSlider(0.0, min=0.0, max=1.0, step=0.25, description="alpha")
    button = widgets.Button(description="train", button_style="primary")
    status = widgets.HTML()
    loss_out, ladder_out = widgets.Output(), widgets.Output()
    show_in(ladder_out, ladder_figure(scaling, None, data_note))

    def train(_: Any = None) -> None:
        config = micro_config(P, width.value, layers.value, temperature.value, alpha.value)
        button.disabled = True
        cached = (recipes.run_dir(P, config) / "done.json").is_file()
        status.value = "cached, reading" if cached else f"training {plan_line(P, config)[0]}"
        try:
            _, cer, spent = train_micro(
                P, config, lambda s, v: show_in(loss_out, loss_figure(s, v, config.steps))
            )
            show_in(loss_out, loss_figure(*losses(recipes.run_dir(P, config)), config.steps))
            show_in(ladder_out, ladder_figure(scaling, micro_summary(config, cer), data_note))
            status.value = f"done in {spent:.0f} s: cross-user CER {cer:.1f} %"
        finally:
            button.disabled = False

    button.on_click(train)
    knobs = widgets.HBox([widgets.VBox([width, layers]), widgets.VBox([temperature, alpha])])
    return widgets.VBox([knobs, widgets.HBox([button, status]), loss_out, ladder_out])
