"""Decoders in evaluation: greedy and beam search over whole sessions, the `semgkit eval`
flags that choose them, and the book's per-decoder cache beside a run's greedy eval."""

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from semgkit import cli, synth
from semgkit.charset import CHARSET
from semgkit.data import Session, load_split
from semgkit.decoders import GREEDY, Decoder
from semgkit.evaluate import evaluate, evaluate_decoders, evaluate_model
from semgkit.format import SAMPLE_RATE
from semgkit.repro import findings, measured, schedule
from semgkit.repro.profiles import load_profile
from semgkit.runs import TrainConfig, load_run
from semgkit.train import fit
from tests.test_train import tiny

BEAM = Decoder("beam", beam=8)
BEAM_LM = Decoder("beam", beam=8, lm="default")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("corpus") / "smoke", "smoke", progress=False)


@pytest.fixture(scope="module")
def config(corpus) -> TrainConfig:
    return tiny(corpus, steps=4)


@pytest.fixture(scope="module")
def run(config, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return fit(config, tmp_path_factory.mktemp("runs") / "tiny", progress=False)


class Constant(nn.Module):
    """Every frame p(a) = 0.4, p(blank) = 0.6: greedy reads nothing, beam search reads a's."""

    hop = 20

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # a device to read
        probs = torch.full((CHARSET.num_classes,), 1e-9)
        probs[CHARSET.text_to_labels("a")[0]], probs[CHARSET.blank] = 0.4, 0.6
        self.frame = (probs / probs.sum()).log()

    def forward(self, emg, lengths=None):
        return self.frame.expand(emg.shape[0], emg.shape[1] // self.hop, -1)


def test_decoder_rejects_bad_settings_naming_the_field(tmp_path):
    with pytest.raises(ValueError, match="decoder 'viterbi'"):
        Decoder("viterbi")
    with pytest.raises(ValueError, match="lm 'default'.*beam"):
        Decoder("greedy", lm="default")
    with pytest.raises(ValueError, match="beam 0"):
        Decoder("beam", beam=0)
    with pytest.raises(FileNotFoundError, match="nosuch.arpa"):
        Decoder("beam", lm=str(tmp_path / "nosuch.arpa"))
    with pytest.raises(ValueError, match="rule 'kenlm'"):
        Decoder("beam", rule="kenlm")
    with pytest.raises(ValueError, match="rule 'emg2qwerty': a beam decoder without min_log_prob"):
        Decoder("beam", min_log_prob=-8.0, rule="emg2qwerty")


def test_decoder_names_and_recorded_settings():
    assert (GREEDY.name, BEAM.name, BEAM_LM.name) == ("greedy", "beam 8", "beam 8 + LM")
    assert GREEDY.settings() == {"kind": "greedy"}
    assert BEAM_LM.settings() == {
        "kind": "beam",
        "beam": 8,
        "lm": "default",
        "lm_weight": 2.0,
        "insertion_bonus": 2.0,
        "min_log_prob": None,
        "rule": "semgkit",
    }
    e2q = Decoder("beam", lm="default", rule="emg2qwerty")
    assert (e2q.name, e2q.settings()["rule"]) == ("beam 50 + LM (emg2qwerty)", "emg2qwerty")


def test_the_decoder_reads_the_whole_sessions_log_probabilities(corpus, config):
    """Beam search sums alignments across window edges: it finds the a's greedy misses."""
    paths = load_split(corpus, "generic").test
    greedy, beam = evaluate_decoders(Constant(), paths, config, [GREEDY, BEAM])
    assert set(greedy.predictions["prediction"]) == {""}
    assert all(p and set(p) == {"a"} for p in beam.predictions["prediction"])
    assert greedy.predictions["target"].tolist() == beam.predictions["target"].tolist()
    assert greedy.overall["chars"] == beam.overall["chars"] > 0
    assert greedy.overall["CER"] == pytest.approx(100.0)  # every key deleted


def test_one_pass_with_several_decoders_equals_one_evaluation_each(corpus, run):
    model, config = load_run(run)
    paths = load_split(corpus, "generic").test
    results = evaluate_decoders(model, paths, config, [GREEDY, BEAM, BEAM_LM])
    for decoder, result in zip([GREEDY, BEAM, BEAM_LM], results, strict=True):
        alone = evaluate_model(model, paths, config, decoder=decoder)
        assert result.predictions.equals(alone.predictions), decoder.name
        assert result.overall == alone.overall
        assert result.decoder == decoder.settings()
    # greedy through the decoder is the greedy evaluation it replaced
    assert results[0].overall == evaluate(run, corpus, "generic").overall
    # each records the sEMG it decoded: every test session whole, in whole frames
    frames = sum(-(-len(Session(p)) // model.hop) for p in paths)
    for result in results:
        minutes = frames * model.hop / SAMPLE_RATE / 60
        assert result.decoding["semg_minutes"] == pytest.approx(minutes, abs=1e-3)
        assert result.decoding["cpu_seconds"] >= 0
    with pytest.raises(ValueError, match="at least one decoder"):
        evaluate_decoders(model, paths, config, [])


def test_cli_eval_decoder_flags(corpus, run, capsys, tmp_path):
    base = ["eval", "--data", str(corpus), "--run", str(run)]
    assert cli.main([*base, "--decoder", "beam", "--beam", "8", "--lm", "none"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["decoder"] == BEAM.settings()
    assert report["overall"] == pytest.approx(evaluate(run, corpus, decoder=BEAM).overall)
    assert cli.main([*base, "--decoder", "beam", "--beam", "8"]) == 0  # the LM by default
    assert json.loads(capsys.readouterr().out)["decoder"]["lm"] == "default"
    assert cli.main(base) == 0
    assert json.loads(capsys.readouterr().out)["decoder"] == {"kind": "greedy"}

    assert cli.main([*base, "--lm", "default"]) == 2
    assert "--lm" in capsys.readouterr().err
    missing = tmp_path / "nosuch.arpa"
    assert cli.main([*base, "--decoder", "beam", "--lm", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert cli.main([*base, "--decoder", "beam", "--beam", "0"]) == 2
    assert "beam 0" in capsys.readouterr().err
    assert cli.main([*base, "--rule", "emg2qwerty"]) == 2
    assert "--rule need --decoder beam" in capsys.readouterr().err
    rule = ["--decoder", "beam", "--beam", "8", "--lm", "none", "--rule", "emg2qwerty"]
    assert cli.main([*base, *rule]) == 0
    e2q = Decoder("beam", beam=8, rule="emg2qwerty")
    assert json.loads(capsys.readouterr().out)["decoder"] == e2q.settings()


def test_the_book_decodes_a_run_once_per_decoder_and_reuses_the_cache(
    corpus, run, tmp_path, monkeypatch
):
    P = load_profile("smoke", build_dir=tmp_path)
    monkeypatch.setattr(schedule, "prepare_corpus", lambda P: corpus)
    with pytest.raises(FileNotFoundError, match="schedule.decode"):
        measured.decoded(run, "generic", [BEAM])  # reading never decodes
    schedule.decode(P, run, "generic", [BEAM, BEAM_LM])
    first = measured.decoded(run, "generic", [BEAM, BEAM_LM])
    assert [r["decoder"] for r in first] == [BEAM.settings(), BEAM_LM.settings()]
    assert first[0]["overall"] == pytest.approx(evaluate(run, corpus, decoder=BEAM).overall)
    assert len({measured.decoder_key(d) for d in (BEAM, BEAM_LM, Decoder("beam"))}) == 3

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(schedule, "evaluate_decoders", no_decoding)
    schedule.decode(P, run, "generic", [BEAM_LM, BEAM])
    assert measured.decoded(run, "generic", [BEAM_LM, BEAM]) == first[::-1]
    assert math.isfinite(first[1]["decoding"]["cpu_seconds"])


def test_decoder_findings_are_computed_from_the_table():
    import pandas as pd

    table = pd.DataFrame(
        {
            "cross-user CER %": [50.0, 40.0],
            "personalized CER %": [30.0, 20.0],
            "cross-user CER % beam": [49.0, 41.0],
            "personalized CER % beam": [29.0, 19.0],
            "cross-user CER % beam+LM": [45.0, 42.0],
            "personalized CER % beam+LM": [25.0, 19.0],
            "beam CPU s per sEMG min": [0.5, 0.7],
            "beam+LM CPU s per sEMG min": [0.8, 1.2],
            "cross-user CER % beam+LM (emg2qwerty rule)": [45.5, 41.0],
            "beam+LM (emg2qwerty rule) CPU s per sEMG min": [2.0, 3.0],
        }
    )
    lines = findings.decoder_findings(table)
    assert lines[0] == (
        "beam against greedy, cross-user: CER lower for 1 of 2 models, higher for 1 "
        "(mean change +0.0 points, from -1.0 to +1.0)"
    )
    assert lines[3].startswith(
        "beam+LM against beam, personalized: CER lower for 1 of 2 models, higher for 0"
    )
    assert lines[4] == (
        "beam+LM (emg2qwerty rule) against semgkit's rule (beam+LM), cross-user: CER lower for 1 "
        "of 2 models, higher for 1 (mean change -0.25 points, from -1.00 to +0.50)"
    )
    assert "1.0 CPU s per minute of sEMG (median over models, slowest 1.2" in lines[6]
    assert lines[7].startswith("beam+LM (emg2qwerty rule) decoding: 2.5 CPU s per minute")
