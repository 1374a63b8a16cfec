"""The book's teaching aids: figures show the method's own functions, and the micro
trainer trains through ``fit`` into the cache."""

import re

import pytest
import torch

from semgkit.losses import kd_loss
from semgkit.repro import live, recipes, teach
from semgkit.repro.profiles import load_profile


def test_static_slider_steps_carry_each_state_title_and_visibility():
    temps = teach.TEMPERATURES
    fig = teach.static_slider(lambda i: teach.kd_figure(temps[i]), temps, "T = ", active=2)
    steps = fig.layout.sliders[0].steps
    per_state = len(teach.kd_figure(1.0).data)
    assert len(fig.data) == per_state * len(temps)
    assert fig.layout.title.text == teach.kd_figure(temps[2]).layout.title.text
    for i, step in enumerate(steps):
        visible = step.args[0]["visible"]
        assert sum(visible) == per_state and visible[i * per_state]
        assert step.args[1]["title.text"] == teach.kd_figure(temps[i]).layout.title.text
    assert [t.visible for t in fig.data] == steps[2].args[0]["visible"]


def test_kd_figure_plots_the_training_loss_itself():
    t = 4.0
    fig = teach.kd_figure(t)
    expected = float(kd_loss(torch.tensor(teach.TOY_STUDENT), torch.tensor(teach.TOY_TEACHER), t))
    marker = fig.data[-1]
    assert marker.x[0] == t and marker.y[0] == pytest.approx(expected)
    assert f"{expected:.3f}" in fig.layout.title.text


def test_edits_mark_dropped_added_and_substituted_keys():
    html = teach.edits_html("thw quick brownn fox", "the quick brown fox!").data
    body = re.sub(r"<style>.*?</style>", "", html)
    assert '<span class="sub" title="typed e">w</span>' in body
    assert "<ins" in body and ">n</ins>" in body
    assert ">!</del>" in body
    plain = re.sub(r"<ins[^>]*>.*?</ins>|<[^>]+>", "", body)  # the target, edits stripped
    assert plain.replace("w", "e", 1) == "the quick brown fox!"


@pytest.mark.slow
def test_micro_model_trains_into_the_cache_and_is_read_back(tmp_path):
    P = load_profile("smoke", build_dir=tmp_path / "build")
    config = live.micro_config(P, width=8, layers=1, steps=4)
    assert config.model == {"d_model": 8, "layers": 1, "heads": 2} and not config.teacher
    seen = []
    run_dir, cer, _ = live.train_micro(P, config, on_loss=lambda s, v: seen.append(s[-1]))
    assert run_dir == recipes.run_dir(P, config) and (run_dir / "done.json").is_file()
    assert seen and seen[-1] == 4 and 0 <= cer
    steps, losses = live.losses(run_dir)
    assert steps == [1, 2, 3, 4] and len(losses) == 4
    line, seconds = live.plan_line(P, config)
    assert "cached" in line and seconds == 0
    again = live.train_micro(P, config)
    assert again[0] == run_dir and again[1] == cer
