"""The book's teaching aids: sentences and marks follow the numbers, figures show the
method's own functions, and the micro trainer trains through ``fit`` into the cache."""

import re

import pandas as pd
import pytest
import torch

from semgkit.distill import kd_loss
from semgkit.repro import live, recipes, teach
from semgkit.repro.profiles import load_profile


def test_count_phrase_says_every_some_or_none():
    assert teach.count_phrase(3, 3, "models") == "for every one of the 3 models"
    assert teach.count_phrase(2, 3, "models") == "for 2 of 3 models"
    assert teach.count_phrase(0, 3, "models") == "for none of the 3 models"


def test_claim_box_shows_the_measured_verdict():
    assert "✗ does not hold" in teach.claim("What to expect", "x", "does not hold", "m").data
    assert "✓" in teach.claim("The paper reports", "x", True, "m").data
    assert "not testable" in teach.claim("The paper reports", "x", None, "m").data
    with pytest.raises(KeyError):
        teach.mark("maybe")


def row(family, preset, params, cross, personal, spread=0.5):
    return {
        "family": family, "preset": preset, "parameters": params, "seeds": 1, "cross-user seed range": 0.0, "personalized seed range": 0.0,
        "cross-user CER %": cross, "cross-user CI95 lo": cross - spread,
        "cross-user CI95 hi": cross + spread, "personalized CER %": personal,
        "personalized CI95 lo": personal - spread, "personalized CI95 hi": personal + spread,
    }  # fmt: skip


def test_scaling_expectations_are_judged_on_the_table():
    table = pd.DataFrame([
        row("transformer", "a", 1e4, 80.0, 70.0),
        row("transformer", "b", 1e5, 60.0, 60.2),  # personalization within noise here
        row("tds", "t", 1.2e5, 50.0, 40.0),
    ])  # fmt: skip
    verdicts = {text.split()[0]: v for text, v, _ in teach.scaling_expectations(table)}
    assert verdicts == {"Cross-user": "holds", "Personalization": "within noise", "The": "holds"}


def test_distillation_expectations_follow_the_gap():
    def r(role, cer):
        return {"role": role, **row("transformer", role, 1, cer, cer)}

    table = pd.DataFrame(
        [r("teacher", 40.0), r("student alone", 70.0), r("student distilled", 55.0)]
    )
    (beats, v1, _), (behind, v2, _) = teach.distillation_expectations(table)
    assert (v1, v2) == ("holds", "holds")
    table.loc[2, ["cross-user CER %", "cross-user CI95 lo", "cross-user CI95 hi"]] = [
        80,
        79.5,
        80.5,
    ]
    assert teach.distillation_expectations(table)[0][1] == "does not hold"


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


def test_decoder_expectations_compare_the_lm_change_by_setting_and_size():
    table = pd.DataFrame([
        row("transformer", "a", 1e4, 80.0, 70.0),
        row("transformer", "b", 1e5, 60.0, 50.0),
    ])  # fmt: skip
    for setting in ("cross-user", "personalized"):
        table[f"{setting} CER % beam"] = table[f"{setting} CER %"]
    table["cross-user CER % beam+LM"] = [79.0, 61.0]  # helps the small one only
    table["personalized CER % beam+LM"] = [65.0, 45.0]  # helps both by 5
    (_, personal, _), (_, size, _) = teach.decoder_expectations(table)
    assert personal is True and size is False
