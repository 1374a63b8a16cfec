"""The character n-gram LM: a proper distribution, ARPA round trip, emg2qwerty's word rules, CLI."""

import math

import numpy as np
import pytest

from semgkit import cli, lm

WORDS = {"the": 50, "then": 7, "hen": 3, "ten": 4, "net": 2, "a": 20, "tent": 1}


@pytest.mark.parametrize("context", ["", "<", "<t", "<th", "<the", "e", "xq"])
def test_probabilities_sum_to_one(context):
    context = context.replace("<", lm.BOS)
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
    bos = lm.BOS
    the = model.logp(bos, "t") + model.logp(bos + "t", "h") + model.logp(bos + "th", "e")
    end = model.logp(bos + "the", lm.EOS)
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
    bad.write_text("\\data\\\n\\1-grams:\n-1\t<unk>\nhigh\ta\n\\end\\\n")
    with pytest.raises(ValueError, match="bad.arpa:4: 'high' is not a log10 value"):
        lm.CharLM.load(bad)
    bad.write_bytes(b"\\data\\\n\\1-grams:\n-1\t<unk>\n-1\t\xff\n\\end\\\n")
    with pytest.raises(ValueError, match="bad.arpa: not UTF-8 text"):
        lm.CharLM.load(bad)
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        lm.CharLM.load(tmp_path / "missing.arpa")
    assert math.isfinite(lm.build(WORDS, order=2).unk)


# Like emg2qwerty's tests/reuters-3-gram-char-lm.arpa: literal "^" and "$" beside <s> and
# </s>, an explicit backoff of 0, a character ("q") that nothing extends, and a no-break
# space, which is a character too. In KenLM's format: a tab after the probability, words
# split by spaces.
HAND_ARPA = """\\data\\
ngram 1=8
ngram 2=5

\\1-grams:
-1.0\t<unk>\t0
-99\t<s>\t-0.5
-0.6\t</s>\t0
-0.8\t^\t-0.3
-0.9\t$\t-0.2
-0.7\ta\t0
-1.2\tq
-1.3\t\u00a0\t-0.1

\\2-grams:
-0.2\t<s> ^
-0.3\t^ $
-0.25\t$ </s>
-0.4\t<s> a
-1.1\ta \u00a0

\\end\\
"""


def test_literal_caret_and_dollar_are_characters_not_sentence_markers(tmp_path):
    path = tmp_path / "hand.arpa"
    path.write_text(HAND_ARPA, encoding="utf-8")
    model = lm.CharLM.load(path)
    bos, eos = model.start, lm.EOS
    assert model.vocab == {"^", "$", "a", "q", "\u00a0"} and model.order == 2
    # each n-gram holds what its line states
    assert model.logp("", eos) == -0.6 and model.unk == -1.0
    assert (model.logp("", "^"), model.logp("", "$")) == (-0.8, -0.9)
    assert (model.logp(bos, "^"), model.logp("^", "$"), model.logp("$", eos)) == (-0.2, -0.3, -0.25)
    assert model.logp("a", "\u00a0") == -1.1
    # backing off: from <s> (-0.5), from "^" (-0.3), from "a" (an explicit 0)
    assert model.logp(bos, "$") == pytest.approx(-0.5 - 0.9)
    assert model.logp("^", eos) == pytest.approx(-0.3 - 0.6)
    assert model.logp("a", "q") == pytest.approx(0.0 - 1.2)
    # typing "^" leaves the state "^", not the start of a word; "q" extends to nothing
    assert model.step(bos, "^") == ("^", -0.2)
    assert model.step("a", "q")[0] == ""
    assert model.score_text("^$") == pytest.approx(-0.2 - 0.3 - 0.25)
    assert model.score_text("^$ ^") == pytest.approx(-0.75 - 0.2 + model.finish("^"))
    # KenLM's arithmetic: float32 values, summed in float32
    assert model.kenlm_logp(bos, "$") == float(np.float32(np.float32(-0.9) + np.float32(-0.5)))
    assert model.kenlm_step(bos, "Key.space") == (bos, float(np.float32(-1.0)))
    # and back out: the same lines
    model.write(tmp_path / "again.arpa")
    again = lm.CharLM.load(tmp_path / "again.arpa")
    assert (again.probs, again.backoffs) == (model.probs, model.backoffs)
