"""The book's experiment recipe: per-preset learning rates and cache keys."""

import pytest

from semgkit import experiments
from semgkit.profiles import load_profile


@pytest.fixture
def laptop():
    return load_profile("laptop")


def test_peak_lr_falls_as_one_over_width_with_a_cap(laptop):
    laptop["train"].update(lr=3e-3, lr_width_product=0.128)
    assert experiments.peak_lr(laptop, "lap-l") == pytest.approx(0.128 / 128)
    assert experiments.peak_lr(laptop, "lap-m") == pytest.approx(0.128 / 80)
    assert experiments.peak_lr(laptop, "lap-xxs") == pytest.approx(3e-3)  # capped
    assert experiments.peak_lr(laptop, "tds-laptop") == pytest.approx(3e-3)  # no width


def test_peak_lr_is_the_profile_lr_without_the_rule(laptop):
    laptop["train"].pop("lr_width_product", None)
    laptop["train"]["lr"] = 5e-4
    assert {experiments.peak_lr(laptop, p) for p in ("lap-l", "lap-xxs", "tds")} == {5e-4}


def test_config_key_changes_with_the_learning_rate(laptop, tmp_path):
    laptop["build_dir"] = str(tmp_path)
    laptop["corpus"]["path"] = str(tmp_path / "corpus")  # not generated: train_config only names it
    laptop["corpus"]["source"] = "real"
    (tmp_path / "corpus" / "splits").mkdir(parents=True)
    (tmp_path / "corpus" / "splits" / "generic.yaml").write_text("{}\n")
    a = experiments.train_config(laptop, "lap-l")
    b = experiments.train_config(laptop, "lap-l", lr=a.lr * 2)
    assert a.lr == experiments.peak_lr(laptop, "lap-l")
    assert experiments.config_key(a) != experiments.config_key(b)
