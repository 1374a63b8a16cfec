"""The book's run recipes (per-preset learning rates, cache keys, profile defaults), the
schedule that computes runs apart from the readers of their results, the train CLI."""

from dataclasses import replace

import pytest

from semgkit import runs
from semgkit.repro import cache, measured, paper_tables, recipes, schedule
from semgkit.repro.profiles import Corpus, Train, find_profile, load_profile


@pytest.fixture
def laptop():
    return load_profile("laptop")


def test_peak_lr_falls_as_one_over_width_with_a_cap(laptop):
    laptop = replace(laptop, train=replace(laptop.train, lr=3e-3, lr_width_product=0.128))
    assert recipes.peak_lr(laptop, "lap-l") == pytest.approx(0.128 / 128)
    assert recipes.peak_lr(laptop, "lap-m") == pytest.approx(0.128 / 80)
    assert recipes.peak_lr(laptop, "lap-xxs") == pytest.approx(3e-3)  # capped
    assert recipes.peak_lr(laptop, "tds-laptop") == pytest.approx(3e-3)  # no width


def test_peak_lr_is_the_profile_lr_without_the_rule(laptop):
    laptop = replace(laptop, train=replace(laptop.train, lr=5e-4, lr_width_product=0.0))
    assert {recipes.peak_lr(laptop, p) for p in ("lap-l", "lap-xxs", "tds")} == {5e-4}


def test_config_key_changes_with_the_learning_rate(laptop, tmp_path):
    corpus = Corpus(source="real", path=str(tmp_path / "corpus"))  # train_config only names it
    laptop = replace(laptop, build_dir=tmp_path, corpus=corpus)
    (tmp_path / "corpus" / "splits").mkdir(parents=True)
    (tmp_path / "corpus" / "splits" / "generic.yaml").write_text("{}\n")
    a = recipes.train_config(laptop, "lap-l")
    b = recipes.train_config(laptop, "lap-l", lr=a.lr * 2)
    assert a.lr == recipes.peak_lr(laptop, "lap-l")
    assert cache.config_key(a) != cache.config_key(b)


def test_plan_lists_each_run_once_teachers_first_and_the_book_reuses_a_cli_run(
    tmp_path, monkeypatch
):
    """`tools/book.py plan` prints `semgkit train --config` commands; a run trained that way
    (as torchrun would) is found by the book's cache and not trained again."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    import book
    from semgkit import train
    from semgkit.cli import main

    P = load_profile("smoke", build_dir=tmp_path)
    configs = recipes.planned_configs(P)
    keys = [cache.config_key(c) for c in configs]
    assert len(keys) == len(set(keys))
    teacher = recipes.run_dir(P, recipes.train_config(P, P.distill.teacher))
    first_student = next(i for i, c in enumerate(configs) if c.teacher)
    assert all(c.teacher == str(teacher) for c in configs[first_student:])
    assert cache.config_key(recipes.train_config(P, P.distill.teacher)) in keys[:first_student]

    assert book.main(["plan", "--profile", "smoke", "--build", str(tmp_path), "--nproc", "2"]) == 0
    spec = tmp_path / "cache" / "plan" / f"{recipes.run_dir(P, configs[0]).name}.json"
    assert runs.config_from_json(spec) == configs[0]
    target = recipes.run_dir(P, configs[0])
    assert main(["train", "--config", str(spec), "--out", str(target)]) == 0
    assert json.loads((target / "done.json").read_text())["train_seconds"] > 0

    def no_training(*args, **kwargs):
        raise AssertionError("the book retrained a run that was already done")

    monkeypatch.setattr(train, "fit", no_training)
    assert schedule.run(P, configs[0]) == target


def test_train_cli_rejects_an_unknown_config_field(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text('{"data_dir": "x", "preset": "lap-xxs", "stepz": 3}')
    with pytest.raises(ValueError, match="stepz"):
        runs.config_from_json(bad)


def test_profiles_are_typed_with_defaults_in_one_place_and_reject_unknown_keys(tmp_path):
    smoke = load_profile("smoke")
    assert smoke.seed == 0 and smoke.train.accumulate == 1 and smoke.train.lr_width_product == 0
    assert isinstance(smoke.scaling.ladder, tuple)
    bad = tmp_path / "bad.toml"
    bad.write_text(find_profile("smoke").read_text().replace("steps = 8", "stepz = 8"))
    with pytest.raises(ValueError, match=r"\[train\].*stepz"):
        load_profile(bad)


def test_every_test_user_finds_a_personal_split_in_the_release_layout(tmp_path):
    """The corpus is written like the release (`user: user0` headers over numeric ids), so
    the personalized column looks each generic test user up by its id, as on real data."""
    from semgkit.data import personal_splits

    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, train=replace(P.train, personalize_users=0))
    users = recipes.test_users(P)
    splits = personal_splits(recipes.prepare_corpus(P))
    assert users and all(u.isdigit() for u in users)
    assert sorted(splits) == users
    assert set(splits.values()) == {f"user{i}" for i in range(len(users))}


def test_profiles_give_each_run_its_seeds_and_can_extend_another(tmp_path):
    smoke, laptop, seeds = (load_profile(n) for n in ("smoke", "laptop", "laptop-seeds"))
    assert smoke.seeds() == (smoke.seed,) and smoke.model_seeds("lap-xxs") == (smoke.seed,)
    assert laptop.model_seeds("lap-xxs") == (0,) and laptop.model_seeds("lap-l") == (0,)
    assert laptop.student_seeds() == (0, 1, 2)
    assert all(seeds.model_seeds(p) == (0, 1, 2) for p in seeds.scaling.ladder)
    assert seeds.name == "laptop-seeds"
    assert seeds.scaling == replace(laptop.scaling, seeds=seeds.scaling.seeds)
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "smoke"\n[scaling]\nseeds = { nosuch = [0, 1] }\n')
    with pytest.raises(ValueError, match=r"\[scaling\] seeds.*nosuch"):
        load_profile(bad)


def test_planned_configs_train_every_seed_of_a_profile(tmp_path):
    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, distill=replace(P.distill, seeds=(0, 1)))
    configs = recipes.planned_configs(P)
    students = [c for c in configs if c.preset == P.distill.student and not c.teacher]
    assert sorted(c.seed for c in students) == [0, 1]
    teacher = recipes.run_dir(P, recipes.teacher_config(P))
    assert {c.teacher for c in configs if c.teacher} == {str(teacher)}


@pytest.mark.slow
def test_paper_dryrun_reduced_runs_the_paper_path_end_to_end(tmp_path):
    """paper-dryrun cut to a minute or two: the paper's presets (GroupNorm, unbounded
    attention; the TDS-ConvNet's 16-sample hop under a 900 ms past), its windows and
    recipe, one step, one personalization step, distillation large -> tiny, every CER
    column scored on whole sessions, on a corpus in the release's split layout."""
    P = load_profile("paper-dryrun", build_dir=tmp_path)
    d = P.distill
    P = replace(
        P,
        corpus=replace(P.corpus, preset="smoke"),
        train=replace(P.train, steps=1, val_windows=1),
        scaling=replace(P.scaling, ladder=("tiny", "large")),
        distill=replace(d, temperatures=(d.temperature,), alphas=(d.alpha,)),
    )
    assert (P.window.window_s, P.window.past_s, P.window.future_s) == (4.0, 0.9, 0.1)
    table2 = paper_tables.scaling(P)
    assert table2["preset"].tolist() == ["tiny", "large", "tds"]
    assert (table2["CER protocol"] == "session").all()
    assert (table2["personalized users"] == 1).all()
    assert table2[["cross-user CER %", "personalized CER %"]].notna().all().all()
    table3 = paper_tables.distillation(P)["table3_distillation"]
    assert table3["preset"].tolist() == ["large", "tiny", "tiny"]
    assert (table3["CER protocol"] == "session").all()


def test_a_profile_names_only_what_it_changes_and_the_rest_is_trainconfigs(tmp_path):
    """TrainConfig holds a run's defaults; a [train] table without a field gets its default."""
    corpus = Corpus(source="real", path=str(tmp_path / "corpus"))  # train_config only names it
    (tmp_path / "corpus" / "splits").mkdir(parents=True)
    (tmp_path / "corpus" / "splits" / "generic.yaml").write_text("{}\n")
    train = Train(personalize_steps=1, personalize_lr_fraction=1.0)
    lean = replace(load_profile("smoke", build_dir=tmp_path), corpus=corpus, train=train)
    config = recipes.train_config(lean, "lap-xxs")
    default = runs.TrainConfig(data_dir="x")
    for name in ("steps", "batch_size", "accumulate", "lr", "val_windows", "num_workers"):
        assert getattr(config, name) == getattr(default, name), name
    assert config.num_threads == default.num_threads


def test_reading_a_result_never_computes_it_and_says_what_to_run(tmp_path):
    P = load_profile("smoke", build_dir=tmp_path)
    empty = tmp_path / "run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="schedule.evaluate_tests"):
        measured.cross_user(P, empty)
    with pytest.raises(FileNotFoundError, match="schedule.train_many"):
        measured.train_seconds(empty)
    P = replace(P, corpus=replace(P.corpus, path=str(tmp_path / "none"), source="real"))
    config = runs.TrainConfig(data_dir=str(tmp_path), preset="lap-xxs")
    with pytest.raises(FileNotFoundError, match="schedule.train_many"):
        measured.trained(P, [config])
    assert not recipes.run_dir(P, config).exists()


def test_train_cli_flags_default_to_trainconfig_and_keep_a_config_files_values():
    from semgkit.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    text = " ".join(train.format_help().split())
    default = runs.TrainConfig(data_dir="x")
    assert f"optimizer steps (default {default.steps})" in text
    assert f"(default {default.num_workers})" in text
    args = parser.parse_args(["train", "--out", "o", "--steps", "3"])
    assert args.steps == 3 and not hasattr(args, "lr")  # unset: the config file's value
