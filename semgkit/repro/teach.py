"""Teaching aids for the book: sentences computed from tables, the method shown at work.

It phrases measured results and draws trained runs; nothing here decides what a run
computes.
Training live (estimates, the playground's micro models) is :mod:`semgkit.repro.live`.
"""

from __future__ import annotations

import html
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import HTML, Markdown
from plotly.subplots import make_subplots
from rapidfuzz.distance import Levenshtein

from semgkit import paper
from semgkit.charset import CHARSET
from semgkit.data import Session, load_split
from semgkit.decode import greedy
from semgkit.distill import kd_loss
from semgkit.evaluate import evaluate_model
from semgkit.repro.paper_tables import cer_column, measure_of
from semgkit.repro.uncertainty import describe, from_row, judge
from semgkit.runs import load_run, run_config

# ---------------------------------------------------------------- sentences from tables


MARKS = {"holds": "✓ holds", "does not hold": "✗ does not hold", "within noise": "≈ within noise"}


def mark(verdict: bool | str) -> str:
    """The mark printed beside a claim: from a measured boolean, or from a verdict of
    ``uncertainty.judge`` ("holds", "does not hold", "within noise")."""
    if isinstance(verdict, str):
        return MARKS[verdict]
    return "✓" if verdict else "✗"


def count_phrase(n: int, m: int, noun: str) -> str:
    """'for every one of the 3 models', 'for 2 of 3 models', 'for none of the 3 models'."""
    if n == m:
        return f"for every one of the {m} {noun}" if m > 1 else f"for the one {noun}"
    if n == 0:
        return f"for none of the {m} {noun}"
    return f"for {n} of {m} {noun}"


def literal(text: str) -> str:
    """``text`` as Markdown that shows it as typed: every ASCII punctuation mark escaped, so
    a name (a profile's, a preset's: files people share) cannot open a tag, link or maths."""
    return "".join(f"\\{c}" if c in string.punctuation else c for c in text)


def claim(source: str, text: str, verdict: bool | str | None, measured: str) -> Markdown:
    """A boxed claim (what the paper reports, or what to expect) with this run's verdict
    beside it. ``verdict`` None: this run cannot test the claim, and the box says so."""
    shown = "not testable in this run" if verdict is None else mark(verdict)
    source, text, measured = literal(source), literal(text), literal(measured)
    return Markdown(f"> **{source}:** {text}\n>\n> **This run: {shown}.** {measured}")


def claims(source: str, items: Sequence[tuple[str, bool | str | None, str]]) -> Markdown:
    """Several claims from one source in one box, each with its own verdict."""
    lines = [f"> **{literal(source)}**", ">"]
    for text, verdict, measured in items:
        shown = "not testable in this run" if verdict is None else mark(verdict)
        lines.append(f"> - {literal(text)} **This run: {shown}** ({literal(measured)})")
    return Markdown("\n".join(lines))


def _ladder(table: Any) -> list[Any]:
    rows = table[table["family"] == "transformer"].sort_values("parameters")
    return [r for _, r in rows.iterrows()]


def scaling_expectations(table2: Any) -> list[tuple[str, str | None, str]]:
    """Chapter 3's forecasts for the laptop profile, each judged on Table 2 (with
    ``uncertainty.judge``: intervals and seed spread, not the bare means)."""
    ladder, rows = _ladder(table2), [r for _, r in table2.iterrows()]
    m, out = measure_of(table2), []
    if len(ladder) > 1:
        small, big = from_row(ladder[0], m), from_row(ladder[-1], m)
        out.append((f"{m.capitalize()} CER falls from the smallest to the largest transformer.",
                    judge(big, small), f"{describe(small)} -> {describe(big)}"))  # fmt: skip
    if "personalized CER %" in table2:
        verdicts = [judge(from_row(r, "personalized"), from_row(r, m)) for r in rows]
        helped = verdicts.count("holds")
        out.append(("Personalization lowers CER for every model.",
                    "holds" if helped == len(rows) else ("does not hold" if "does not hold" in verdicts else "within noise"),
                    f"holds {count_phrase(helped, len(rows), 'models')}"))  # fmt: skip
    tds = [r for r in rows if r["family"] == "tds"]
    if tds and ladder:
        t = from_row(tds[0], m)
        near = min(ladder, key=lambda r: abs(np.log(r["parameters"] / tds[0]["parameters"])))
        out.append((f"The TDS-ConvNet beats the transformer closest to it in size ({near['preset']}), "
                    "the opposite of the paper.", judge(t, from_row(near, m)),
                    f"TDS-ConvNet {describe(t)}, {near['preset']} {describe(from_row(near, m))}"))  # fmt: skip
    return out


def decoder_expectations(table2: Any) -> list[tuple[str, bool, str]]:
    """Chapter 3's forecasts about the language model, checked on Table 2's decoder columns
    (mean change in CER points from beam to beam+LM; negative: the LM helped)."""
    m = measure_of(table2)
    change = {
        setting: table2[cer_column(setting, "beam+LM")] - table2[cer_column(setting, "beam")]
        for setting in (m, "personalized")
        if f"{setting} CER %" in table2
    }
    mean = {k: float(v.mean()) for k, v in change.items()}
    order = table2.sort_values("parameters").index
    ladder = [i for i in order if table2.loc[i, "family"] == "transformer"]
    small, big = change[m][ladder[0]], change[m][ladder[-1]]
    out = [
        (f"The LM helps the largest transformer more than the smallest ({m}).",
         bool(big < small), f"{big:+.1f} against {small:+.1f} points"),
    ]  # fmt: skip
    if "personalized" in mean:
        out.insert(0, ("The LM helps personalized models more than cross-user ones.",
                       bool(mean["personalized"] < mean[m]),
                       f"mean change {mean['personalized']:+.1f} personalized, {mean[m]:+.1f} {m}"))  # fmt: skip
    return out


def distillation_expectations(table3: Any) -> list[tuple[str, str | None, str]]:
    """Chapter 4's forecasts for the laptop profile, each judged on Table 3."""
    rows, m = {r["role"]: r for _, r in table3.iterrows()}, measure_of(table3)
    t, s, k = (from_row(rows[r], m) for r in ("teacher", "student alone", "student distilled"))
    gap = k.cer - t.cer
    return [
        ("Distillation beats training the student alone.", judge(k, s),
         f"distilled {describe(k)}, alone {describe(s)}"),
        (f"The distilled student stays more than the paper's {paper.DISTILL_GAP} points behind "
         "the teacher (tiny models, short training).", judge(t, k, margin=-paper.DISTILL_GAP),
         f"{gap:+.1f} points from the teacher"),
    ]  # fmt: skip


def ratio(a: float, b: float) -> str:
    """'53x' for a/b, the way the prose quotes a size ratio."""
    return f"{a / b:.0f}x" if a >= 10 * b else f"{a / b:.1f}x"


# ------------------------------------------------------------------- sliders, two ways


def widget_slider(make: Callable[[int], go.Figure], labels: Sequence[str], description: str):
    """An ipywidgets slider showing ``make(i)``; updated with ``notebook.show_in``, never a
    ``with out:`` capture (which can hang papermill, see ``show_in``)."""
    import ipywidgets as widgets

    from semgkit.repro.notebook import show_in

    slider = widgets.SelectionSlider(
        options=[(str(label), i) for i, label in enumerate(labels)],
        description=description,
        continuous_update=False,
    )
    out = widgets.Output()

    def show(change: Any = None) -> None:
        show_in(out, make(slider.value))

    slider.observe(show, names="value")
    show()
    return widgets.VBox([slider, out])


def static_slider(
    make: Callable[[int], go.Figure], labels: Sequence[str], prefix: str, active: int = 0
) -> go.Figure:
    """One figure holding every state of ``make(i)``, switched by a plotly slider: a
    kernel-free replay for the static HTML. Each step also sets its state's title."""
    states = [make(i) for i in range(len(labels))]
    fig = go.Figure(states[active])
    fig.data = []
    n = len(states[0].data)
    for i, state in enumerate(states):
        for trace in state.data:
            fig.add_trace(trace.update(visible=i == active))
    steps = [
        dict(
            method="update",
            label=str(label),
            args=[
                {"visible": [j // n == i for j in range(n * len(states))]},
                {"title.text": states[i].layout.title.text},
            ],
        )
        for i, label in enumerate(labels)
    ]
    fig.update_layout(
        sliders=[dict(active=active, currentvalue=dict(prefix=prefix), steps=steps)], height=500
    )
    return fig


# ------------------------------------------------------------------ distillation loss

TOY_KEYS = ("blank", "a", "s", "q", "w", "z")
TOY_TEACHER = (4.0, 2.5, 1.0, 0.5, -1.0, -2.0)  # sure of blank, 'a' a clear second
TOY_STUDENT = (2.0, 0.0, 1.5, 0.0, 0.5, 0.0)  # less sure, confuses 'a' with 's'
TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def kd_figure(temperature: float) -> go.Figure:
    """Teacher and student distributions over six toy classes at ``temperature``, and
    ``distill.kd_loss`` of this pair against T with the current T marked."""
    teacher, student = torch.tensor(TOY_TEACHER), torch.tensor(TOY_STUDENT)
    grid = np.geomspace(0.25, 32, 60)
    losses = [float(kd_loss(student, teacher, t)) for t in grid]
    here = float(kd_loss(student, teacher, temperature))
    fig = make_subplots(
        cols=2,
        column_widths=[0.55, 0.45],
        subplot_titles=(
            f"softmax(logits / {temperature:g})",
            "T² · KL(teacher_T ‖ student_T)  (distill.kd_loss)",
        ),
    )
    for name, logits, color in (
        ("teacher", teacher, "#1f77b4"),
        ("student", student, "#ff7f0e"),
    ):
        fig.add_bar(
            x=list(TOY_KEYS),
            y=torch.softmax(logits / temperature, -1).tolist(),
            name=name,
            marker_color=color,
            row=1,
            col=1,
        )
    fig.add_scatter(x=grid, y=losses, mode="lines", name="kd_loss", line_color="gray", row=1, col=2)
    fig.add_scatter(
        x=[temperature],
        y=[here],
        mode="markers",
        name=f"T = {temperature:g}",
        marker=dict(size=14, color="gold", line=dict(width=2)),
        row=1,
        col=2,
    )
    fig.update_yaxes(range=[0, 1], title_text="probability", row=1, col=1)
    fig.update_xaxes(type="log", title_text="temperature T", row=1, col=2)
    fig.update_layout(
        title=f"T = {temperature:g}: distillation loss {here:.3f} for this toy frame",
        height=420,
        barmode="group",
    )
    return fig


# ------------------------------------------------------------ a trained run at work


def _test_window(run_dir: Path, data_dir: Path, seconds: float) -> tuple[Session, int, int]:
    """A stretch of ``seconds`` of the first test session, starting at its first key."""
    config = run_config(run_dir)
    session = Session(load_split(data_dir, config.split).test[0])
    presses, _ = session.key_events()
    lo = int(presses[0]) if len(presses) else 0
    return session, lo, lo + config.samples(seconds)


@torch.no_grad()
def alignment_figure(run_dir: Path, data_dir: Path, seconds: float = 3.0) -> go.Figure:
    """Per-frame posteriors of a trained model on a test window against the keystroke
    times: CTC's peaky alignment, each key a spike near its press, blank between."""
    model, config = load_run(run_dir)
    session, lo, hi = _test_window(run_dir, data_dir, seconds)
    past, future = config.samples(config.past_s), config.samples(config.future_s)
    emg = torch.from_numpy(session.window(lo - past, hi + future))
    probs = model(emg[None])[0].exp()  # (frames, classes)
    rate = session.sample_rate
    times = (np.arange(len(probs)) + 0.5) * model.hop / rate - past / rate
    inside = (times >= 0) & (times < (hi - lo) / rate)
    probs, times = probs[inside], times[inside]
    presses, text = session.key_events()
    keep = (presses >= lo) & (presses < hi)
    press_t = (presses[keep] - lo) / rate
    keys = [c for c, k in zip(text, keep, strict=True) if k]
    fig = go.Figure()
    fig.add_scatter(x=times, y=probs[:, CHARSET.blank].tolist(), mode="lines", name="blank",
                    line=dict(color="gray", dash="dash"))  # fmt: skip
    for label in sorted(
        set(probs[:, : CHARSET.blank].argmax(-1).tolist())
        | set(CHARSET.text_to_labels("".join(keys)))
    ):
        fig.add_scatter(x=times, y=probs[:, label].tolist(), mode="lines",
                        name=repr(CHARSET.labels_to_text([label])))  # fmt: skip
    for t, key in zip(press_t, keys, strict=True):
        fig.add_vline(x=t, line=dict(color="black", dash="dot", width=1))
        fig.add_annotation(x=t, y=1.06, text=html.escape(repr(key)[1:-1] or "␣"),
                           showarrow=False, yref="y")  # fmt: skip
    decoded = greedy(torch.log(probs[None].clamp_min(1e-12)))[0]
    fig.update_layout(
        title=f"{config.preset} on a held-out user: decoded {decoded!r}, typed {''.join(keys)!r}",
        xaxis_title="time in the window (s); dotted lines: key presses",
        yaxis=dict(title="per-frame probability", range=[0, 1.12]),
        height=440,
    )
    return fig


def edits_html(prediction: str, target: str, limit: int = 400) -> HTML:
    """Prediction against target with the edits marked (rapidfuzz editops): keys the model
    dropped struck through, keys it added underlined green, substitutions red."""
    ops = {}
    for op in Levenshtein.editops(target, prediction):
        ops.setdefault(op.src_pos, []).append(op)
    out, i = [], 0
    while i <= len(target):
        for op in ops.get(i, []):
            if op.tag == "insert":
                out.append(f'<ins title="added">{html.escape(prediction[op.dest_pos])}</ins>')
        if i == len(target):
            break
        tags = {op.tag: op for op in ops.get(i, []) if op.tag != "insert"}
        char = html.escape(target[i])
        if "delete" in tags:
            out.append(f'<del title="dropped">{char}</del>')
        elif "replace" in tags:
            new = html.escape(prediction[tags["replace"].dest_pos])
            out.append(f'<span class="sub" title="typed {char}">{new}</span>')
        else:
            out.append(char)
        i += 1
        if i >= limit:
            out.append(" …")
            break
    style = (
        "<style>.edits{font-family:monospace;white-space:pre-wrap;line-height:1.6}"
        ".edits del{color:#999;background:#eee}.edits ins{color:#080;background:#dfd}"
        ".edits .sub{color:#c00;background:#fdd}</style>"
    )
    return HTML(f'{style}<div class="edits">{"".join(out)}</div>')


def decoded_session(run_dir: Path, data_dir: Path) -> tuple[str, str, dict[str, float]]:
    """(prediction, target, rates) of the run on the first test session of its split."""
    model, config = load_run(run_dir)
    path = load_split(data_dir, config.split).test[0]
    result = evaluate_model(model, [path], config)
    row = result.predictions.iloc[0]
    return row["prediction"], row["target"], result.overall
