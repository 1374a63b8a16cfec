"""The character n-gram LM: a proper distribution, ARPA round trip, emg2qwerty's word rules, CLI."""

import math

import pytest

from semgkit import cli, lm

WORDS = {"the": 50, "then": 7, "hen": 3, "ten": 4, "net": 2, "a": 20, "tent": 1}


@pytest.mark.parametrize("context", ["", "^", "^t", "^th", "^the", "e", "xq"])
def test_probabilities_sum_to_one(context):
    model = lm.build(WORDS, order=4)
    outcomes = [*model.vocab, lm.EOS, lm.UNK]
    assert sum(10 ** model.logp(context, c) for c in outcomes) == pytest.approx(1.0)


def test_arpa_round_trip(tmp_path):
    model = lm.build(WORDS, order=3)
    for name in ("m.arpa", "m.arpa.gz"):
        model.write(tmp_path / name)
        again = lm.CharLM.load(tmp_path / name)
        assert again.order == 3 and again.probs.keys() == model.probs.keys()
        assert again.backoffs == pytest.approx(model.backoffs, abs=1e-5)
        assert again.score_text("then a tent") == pytest.approx(model.score_text("then a tent"))


def test_other_keys_end_the_word():
    model = lm.build(WORDS, order=3)
    the = model.logp("^", "t") + model.logp("^t", "h") + model.logp("^th", "e")
    end = model.logp("^the", lm.EOS)
    assert model.score_text("the") == pytest.approx(the + end)
    assert model.score_text("the ") == pytest.approx(the + end)  # the space closes the word
    assert model.score_text("the  ") == pytest.approx(the + end + model.unk)
    assert model.score_text("The") < model.score_text("the")  # capitals are outside


def test_default_model_knows_english():
    model = lm.default()
    assert model.order == 6
    assert model.score_text("the") > model.score_text("teh") + 3
    assert model.score_text("keyboard") > model.score_text("kbeyoard")


def test_words_keeps_letter_runs():
    assert lm.words("The cat's hat, the 2 CATS; naïve") == {
        "the": 2,
        "cat": 1,
        "s": 1,
        "hat": 1,
        "cats": 1,
    }


def test_cli_build(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text("the then hen ten net a tent " * 3)
    out = tmp_path / "lm.arpa"
    assert cli.main(["lm", "build", "--text", str(text), "--order", "3", "--out", str(out)]) == 0
    assert lm.CharLM.load(out).score_text("then") > lm.CharLM.load(out).score_text("nhet")
    assert cli.main(["lm", "build", "--text", str(tmp_path / "no.txt"), "--out", str(out)]) == 2
    assert "no.txt: no such text file" in capsys.readouterr().err
    assert cli.main(["lm", "build", "--text", str(text), "--order", "1", "--out", str(out)]) == 2


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("hello\n")
    with pytest.raises(ValueError, match="bad.arpa: not an ARPA"):
        lm.CharLM.load(bad)
    bad.write_text("\\data\\\n\\1-grams:\n-1\tthe\n-1\t<unk>\n\\end\\\n")
    with pytest.raises(ValueError, match="bad.arpa:3: not a character model"):
        lm.CharLM.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        lm.CharLM.load(tmp_path / "missing.arpa")
    assert math.isfinite(lm.build(WORDS, order=2).unk)
