"""Behaviour of the synthetic corpus: determinism, emg2qwerty layout, splits, safe writes."""

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from semgkit import cli, populations, synth, synth_signal
from semgkit.data import Session, load_split, personal_splits
from semgkit.synth import CORPUS_PRESETS, MARKER, SynthConfig, generate

TINY = replace(CORPUS_PRESETS["smoke"], train_users=2, test_users=1, session_s=3.0)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """The smoke corpus twice with seed 0 (separate folders) and once with seed 1."""
    root = tmp_path_factory.mktemp("synth")
    return {
        "a": generate(root / "a", "smoke", seed=0, progress=False),
        "b": generate(root / "b", "smoke", seed=0, progress=False),
        "seed1": generate(root / "seed1", "smoke", seed=1, progress=False),
    }


@pytest.fixture(scope="module")
def corpus(corpora) -> Path:
    return corpora["a"]


def sessions(root: Path) -> list[Path]:
    return sorted(root.glob("*.hdf5"))


def expected_session_count(config: SynthConfig) -> int:
    per_train = config.train_sessions + config.val_sessions
    return config.train_users * per_train + config.test_users * sum(config.personal_sessions)


def test_session_files_match_the_preset(corpus):
    assert len(sessions(corpus)) == expected_session_count(CORPUS_PRESETS["smoke"])


def test_same_seed_gives_identical_bytes_of_signal_and_keystrokes(corpora):
    a, b = sessions(corpora["a"]), sessions(corpora["b"])
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        sa, sb = Session(pa), Session(pb)
        assert sa.emg.tobytes() == sb.emg.tobytes()
        assert sa.timestamps.tobytes() == sb.timestamps.tobytes()
        assert sa.keystrokes == sb.keystrokes
        assert sa.prompts == sb.prompts


def test_different_seed_gives_a_different_signal(corpora):
    a, c = sessions(corpora["a"]), sessions(corpora["seed1"])
    assert len(a) == len(c)  # same shape of corpus, other people (user ids) and signals
    assert {Session(p).user for p in a}.isdisjoint(Session(p).user for p in c)
    for pa, pc in zip(a, c, strict=True):
        ea, ec = Session(pa).emg, Session(pc).emg
        assert ea.shape == ec.shape
        assert not np.array_equal(ea, ec)
    assert Session(a[0]).keystrokes != Session(c[0]).keystrokes


def test_files_use_emg2qwerty_layout(corpus):
    config = CORPUS_PRESETS["smoke"]
    for path in sessions(corpus):
        with h5py.File(path, "r") as f:
            assert list(f.keys()) == ["emg2qwerty"]
            group = f["emg2qwerty"]
            ts = group["timeseries"]
            assert ts.ndim == 1
            assert ts.dtype.names == ("emg_left", "emg_right", "time")
            assert ts.dtype["emg_left"] == np.dtype(("<f4", (16,)))
            assert ts.dtype["emg_right"] == np.dtype(("<f4", (16,)))
            assert ts.dtype["time"] == np.dtype("<f8")
            assert len(ts) == round(config.session_s * config.sample_rate)
            attrs = dict(group.attrs)
            assert set(attrs) >= {
                "session_name",
                "user",
                "condition",
                "duration_mins",
                "keystrokes",
                "prompts",
            }
            assert attrs["session_name"] == path.stem
            assert attrs["condition"] == "on_keyboard"
            assert attrs["duration_mins"] == pytest.approx(config.session_s / 60)
            keystrokes = json.loads(attrs["keystrokes"])
            prompts = json.loads(attrs["prompts"])
            assert keystrokes and prompts
            assert all(set(k) == {"key", "start", "end"} for k in keystrokes)
            # emg2qwerty's prompt records: a name, start/end times and the text in a payload
            assert all(set(p) == {"name", "start", "end", "payload"} for p in prompts)
            assert all(p["name"] == "text_prompt" and "text" in p["payload"] for p in prompts)
            time = ts["time"]
            assert np.all(np.diff(time) > 0)
            # keystrokes are wall-clock times inside the recording
            starts = np.array([k["start"] for k in keystrokes])
            assert time[0] <= starts.min() and starts.max() < time[-1]


def test_session_round_trip(corpus):
    path = sessions(corpus)[0]
    s = Session(path)
    with h5py.File(path, "r") as f:
        raw = f["emg2qwerty"]["timeseries"][()]
    np.testing.assert_array_equal(s.emg[:, 0], raw["emg_left"])
    np.testing.assert_array_equal(s.emg[:, 1], raw["emg_right"])
    assert s.emg.shape == (len(raw), 2, 16) and s.emg.dtype == np.float32
    assert np.isfinite(s.emg).all()
    assert s.sample_rate == pytest.approx(CORPUS_PRESETS["smoke"].sample_rate, rel=1e-6)
    assert s.session_name == path.stem
    # the release's naming: 8-digit user ids, sessions named date-unixtime-keystrokes-user
    match = re.fullmatch(r"\d{4}-\d\d-\d\d-(\d{10})-keystrokes-(\d{8})", path.stem)
    assert match and match[2] == s.user and int(match[1]) == int(s.timestamps[0])


def test_metadata_rows_match_files(corpus):
    with (corpus / "metadata.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["session"] for r in rows) == [p.stem for p in sessions(corpus)]
    for row in rows:
        s = Session(corpus / f"{row['session']}.hdf5")
        assert row["user"] == s.user
        assert row["condition"] == s.condition
        assert int(row["num_keystrokes"]) == len(s.keystrokes)
        assert int(row["num_prompts"]) == len(s.prompts)
    assert list(rows[0]) == list(synth.METADATA_COLUMNS)
    assert {"session", "user", "duration_mins", "num_keystrokes", "num_prompts"} <= set(rows[0])


def test_generic_split_separates_test_users(corpus):
    config = CORPUS_PRESETS["smoke"]
    split = load_split(corpus, "generic")
    users = {
        part: {Session(p).user for p in getattr(split, part)} for part in ("train", "val", "test")
    }
    assert len(users["train"]) == config.train_users
    assert users["val"] == users["train"]
    assert len(users["test"]) == config.test_users
    assert not (users["train"] | users["val"]) & users["test"]
    assert split.test_users == sorted(users["test"])
    assert len(split.train) == config.train_users * config.train_sessions
    assert len(split.val) == config.train_users * config.val_sessions
    text = (corpus / "splits" / "generic.yaml").read_text()
    assert text.startswith("# @package _global_\n")
    spec = yaml.safe_load(text)
    assert spec["user"] == "generic" and set(spec["dataset"]) == {"train", "val", "test"}
    assert all(set(e) == {"user", "session"} for e in spec["dataset"]["train"])


def test_personal_split_for_each_test_user(corpus):
    generic = load_split(corpus, "generic")
    mapping = personal_splits(corpus)
    assert sorted(mapping) == generic.test_users
    n_train, n_val, n_test = CORPUS_PRESETS["smoke"].personal_sessions
    all_parts = []
    assert sorted(mapping.values()) == [f"user{i}" for i in range(len(mapping))]
    for user, name in mapping.items():
        split = load_split(corpus, name)
        # as in the release: the header says user0, the sessions belong to a numeric id
        assert split.user == name and split.test_users == [user]
        assert (len(split.train), len(split.val), len(split.test)) == (n_train, n_val, n_test)
        parts = split.train + split.val + split.test
        assert {Session(p).user for p in parts} == {user}
        assert len(set(parts)) == len(parts)
        all_parts += parts
        # the personal test sessions are exactly that user's generic test sessions
        assert set(split.test) == {p for p in generic.test if Session(p).user == user}
    assert len(set(all_parts)) == len(all_parts)


def test_labels_include_shift_backspace_enter_and_space(corpus):
    text = "".join(Session(p).key_events()[1] for p in sessions(corpus))
    for key in "⇧⌫⏎ ":
        assert key in text, f"no {key!r} in the typed labels"
    assert any(c.isupper() for c in text) and any(c.islower() for c in text)


def test_users_differ_in_band_placement():
    rng = np.random.default_rng
    a, b = (
        synth_signal.make_user("a", rng([0, 0]), 1.0),
        synth_signal.make_user("b", rng([0, 1]), 1.0),
    )
    assert not np.allclose(a.rotation, b.rotation)
    assert not np.allclose(
        synth_signal.mixing(a.rotation[0], a.gains[0]),
        synth_signal.mixing(b.rotation[0], b.gains[0]),
    )
    same = synth_signal.make_user("c", rng([0, 2]), 0.0)
    np.testing.assert_array_equal(same.rotation, 0.0)
    np.testing.assert_array_equal(same.gains, 1.0)


def test_rotation_rolls_the_mixing_around_the_band():
    gains = np.ones(16)
    np.testing.assert_allclose(
        synth_signal.mixing(1.0, gains), np.roll(synth_signal.mixing(0.0, gains), 1, axis=1)
    )


def _nearest_session_same_user(root: Path) -> float:
    """Fraction of sessions whose nearest other session (electrode energy profile) is the same user's."""
    ss = [Session(p) for p in sessions(root)]
    profiles = []
    for s in ss:
        log_rms = np.log(np.sqrt((s.emg.astype(np.float64) ** 2).mean(0))).ravel()
        profiles.append(log_rms - log_rms.mean())
    P = np.array(profiles)
    D = ((P[:, None] - P[None]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    return float(np.mean([ss[i].user == ss[j].user for i, j in enumerate(D.argmin(1))]))


def test_sessions_cluster_by_user_and_spread_controls_it(corpus, tmp_path):
    """Cross-user structure: a session's electrode energy profile identifies its user, and
    the effect comes from the per-user variation (user_spread=0 removes it)."""
    with_spread = _nearest_session_same_user(corpus)
    alike = generate(
        tmp_path / "alike", replace(CORPUS_PRESETS["smoke"], user_spread=0.0), progress=False
    )
    without = _nearest_session_same_user(alike)
    print(f"nearest session same user: spread 1 {with_spread:.2f}, spread 0 {without:.2f}")
    assert with_spread >= 0.75
    assert without < with_spread - 0.3


# --- generate(): safe writes ------------------------------------------------------------


def test_refuses_non_empty_foreign_dir_and_overwrite_replaces_it(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=str(out)):
        generate(out, TINY, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not (out / MARKER).exists()
    generate(out, TINY, overwrite=True, progress=False)
    assert not (out / "notes.txt").exists()
    assert (out / MARKER).is_file()
    assert len(sessions(out)) == expected_session_count(TINY)


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_corpus_holding_a_run_or_a_split_of_ones_own_is_never_replaced(tmp_path, capsys):
    # a corpus of another recipe is replaced, but only when it holds nothing else
    out = generate(tmp_path / "c", TINY, seed=0, progress=False)
    run = out / "runs" / "tiny"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "last.pt").write_bytes(b"weights")
    (out / "splits" / "mine.yaml").write_text("user: me\n")
    before = tree(out)
    with pytest.raises(
        FileExistsError,
        match=r"holds more than a corpus: it holds runs/, "
        r"splits/mine\.yaml, which semgkit synth did not write",
    ):
        generate(out, TINY, seed=1, progress=False)
    assert cli.main(["synth", "--out", str(out), "--preset", "smoke", "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith(f"semgkit synth: error: --out {out} holds more than a corpus")
        and "\n" not in err
    )
    assert tree(out) == before
    assert not (tmp_path / "c.partial").exists()


def test_a_run_directory_is_refused_naming_what_is_there(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "metrics.jsonl", "last.pt", "best.pt", "done.json"):
        (out / name).write_text(name)
    before = tree(out)
    assert cli.main(["synth", "--out", str(out), "--preset", "smoke"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"semgkit synth: error: --out {out} is not a semgkit corpus: it holds best.pt, "
        "config.json, done.json, last.pt and 1 more, which semgkit synth did not write; "
        "choose an empty or new directory (or pass --overwrite to delete them)"
    )
    assert tree(out) == before


def test_a_folder_in_the_way_of_the_build_is_never_cleared(tmp_path):
    (tmp_path / "c.partial").mkdir()
    (tmp_path / "c.partial" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"c\.partial is in the way"):
        generate(tmp_path / "c", TINY, progress=False)
    assert (tmp_path / "c.partial" / "notes.txt").read_text() == "keep me"


def test_empty_existing_dir_is_filled(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert generate(out, TINY, progress=False) == out
    assert len(sessions(out)) == expected_session_count(TINY)


def test_identical_corpus_is_reused_without_rewriting(tmp_path):
    out = generate(tmp_path / "c", TINY, seed=5, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert generate(out, TINY, seed=5, progress=False) == out
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert after == before


def test_a_corpus_of_another_recipe_is_replaced(tmp_path):
    out = generate(tmp_path / "c", TINY, seed=0, progress=False)
    first = Session(sessions(out)[0]).emg.copy()
    generate(out, TINY, seed=1, progress=False)
    assert json.loads((out / MARKER).read_text())["seed"] == 1
    assert not np.array_equal(Session(sessions(out)[0]).emg, first)


def _interrupt_after(monkeypatch, n: int) -> None:
    real, calls = synth.write_session, []

    def failing(*args, **kwargs):
        if len(calls) == n:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(args[0])
        real(*args, **kwargs)

    monkeypatch.setattr(synth, "write_session", failing)


def test_interrupted_build_leaves_no_out_dir(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        generate(out, TINY, progress=False)
    assert not out.exists()
    monkeypatch.undo()
    generate(out, TINY, progress=False)  # a retry starts clean and finishes
    assert len(sessions(out)) == expected_session_count(TINY)
    assert not (tmp_path / "corpus.partial").exists()  # the cut build, cleared (it was ours)


def test_interrupted_rebuild_keeps_the_previous_corpus(tmp_path, monkeypatch):
    out = generate(tmp_path / "corpus", TINY, seed=0, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        generate(out, TINY, seed=1, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_unknown_preset_is_a_value_error_naming_known_presets(tmp_path):
    with pytest.raises(ValueError, match="smoke"):
        generate(tmp_path / "x", "no-such-preset", progress=False)


def test_unknown_preset_writes_nothing(tmp_path):
    with pytest.raises((ValueError, KeyError)):
        generate(tmp_path / "x", "no-such-preset", progress=False)
    assert not (tmp_path / "x").exists()


# --- the `semgkit synth` command ---------------------------------------------------------


def test_cli_writes_the_same_corpus_as_generate(corpora, tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli.main(["synth", "--out", str(out), "--preset", "smoke", "--seed", "0"]) == 0
    assert str(out) in capsys.readouterr().out
    reference = sessions(corpora["a"])
    assert [p.name for p in sessions(out)] == [p.name for p in reference]
    assert Session(sessions(out)[-1]).emg.tobytes() == Session(reference[-1]).emg.tobytes()


def test_cli_errors_are_reported_with_exit_code_2(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    assert cli.main(["synth", "--out", str(foreign), "--preset", "smoke"]) == 2
    assert str(foreign) in capsys.readouterr().err
    assert cli.main(["synth", "--out", str(tmp_path / "y"), "--preset", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--preset" in err and "smoke" in err
    assert not (tmp_path / "y").exists()


def test_cli_profile_is_a_deprecated_alias_of_preset(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "y"), "--profile", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--profile is deprecated" in err
    assert "--profile 'nope'" in err and "smoke" in err


def test_session_length_option_and_release_shaped_preset(tmp_path, capsys):
    out = tmp_path / "short"
    assert (
        cli.main(["synth", "--out", str(out), "--preset", "smoke", "--session-minutes", "0.1"]) == 0
    )
    assert {len(Session(p)) for p in out.glob("*.hdf5")} == {12_000}  # 6 s at 2 kHz
    assert cli.main(["synth", "--out", str(out), "--session-minutes", "0"]) == 2
    assert "--session-minutes" in capsys.readouterr().err
    release = CORPUS_PRESETS["release-shaped"]
    assert release.session_s == 18 * 60 and release.test_users == 8


def test_long_noise_keeps_its_variance_and_spectrum():
    """Beyond one bank, noise is pieced from the bank: same spread, same band, no clicks."""
    n, fs = 5 * synth_signal.BANK + 123, 2000
    rng = np.random.default_rng(0)
    noise = synth_signal._motor_unit_noise(n, 3, fs, 120.0, rng).read(0, n)
    assert noise.shape == (3, n) and noise.dtype == np.float32
    np.testing.assert_allclose(noise.std(axis=1), 1.0, atol=0.05)
    power = np.abs(np.fft.rfft(noise, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1 / fs)
    in_band = power[:, (freqs > 15) & (freqs < 500)].sum(1) / power.sum(1)
    assert (in_band > 0.99).all()
    step = np.abs(np.diff(noise, axis=1))  # joins are no rougher than the rest
    joins = step[:, synth_signal.SEGMENT - 1 :: synth_signal.SEGMENT]
    assert joins.mean() < 1.2 * step.mean()


# --- held-out populations ----------------------------------------------------------------

POPULATED = replace(
    CORPUS_PRESETS["smoke"],
    populations=(
        populations.POPULATIONS["fast-typists"],
        replace(populations.POPULATIONS["wide-placement"], users=2),
    ),
)


@pytest.fixture(scope="module")
def populated(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("pop") / "c", POPULATED, seed=0, progress=False)


def test_populations_add_users_and_leave_every_other_byte_as_it_was(corpus, populated):
    """The default corpus is today's: same sessions, signals, keystrokes, splits and
    marker recipe; a populated corpus only adds the held-out users' sessions and splits."""
    assert "populations" not in json.loads((corpus / MARKER).read_text())["config"]
    base = {p.name for p in sessions(corpus)}
    assert base < {p.name for p in sessions(populated)}
    for name in sorted(base):
        a, b = Session(corpus / name), Session(populated / name)
        assert a.emg.tobytes() == b.emg.tobytes() and a.keystrokes == b.keystrokes
    for split in (corpus / "splits").glob("*.yaml"):
        assert (populated / "splits" / split.name).read_text() == split.read_text()
    extra = sorted(p.stem for p in (populated / "splits").glob("holdout-*.yaml"))
    assert extra == ["holdout-fast-typists", "holdout-wide-placement"]


def test_a_holdout_split_has_no_user_of_its_population_in_training(populated):
    generic = load_split(populated, "generic")
    for name, users in (("fast-typists", 4), ("wide-placement", 2)):
        split = load_split(populated, f"holdout-{name}")
        held = {Session(p).user for p in split.test}
        trained = {Session(p).user for p in split.train + split.val}
        assert len(held) == users and not held & trained
        assert split.train == generic.train and split.val == generic.val
        assert not held & set(generic.test_users)
    assert set(personal_splits(populated).values()) == {"user0", "user1"}


def test_population_users_differ_in_their_one_way():
    """Drawn like any user, then moved: faster typing, wider placement, lower spectrum."""
    base = synth_signal.make_user("u", np.random.default_rng(3), 1.0)
    fast = populations.POPULATIONS["fast-typists"].user(base)
    assert fast.iki_s == pytest.approx(base.iki_s / 1.6) and (fast.rotation == base.rotation).all()
    wide = populations.POPULATIONS["wide-placement"].user(base)
    np.testing.assert_allclose(wide.rotation, 3 * base.rotation)
    thick = populations.POPULATIONS["thick-skin"].user(base)
    assert thick.peak_hz < base.peak_hz and (thick.gains < base.gains).all()


def test_fast_typists_press_more_keys(populated):
    def keys_per_session(paths):
        return np.mean([len(Session(p).keystrokes) for p in paths])

    fast = load_split(populated, "holdout-fast-typists").test
    assert keys_per_session(fast) > 1.2 * keys_per_session(load_split(populated, "generic").test)


def test_cli_population_flag(tmp_path, capsys):
    out = tmp_path / "p"
    flags = ["--population", "thick-skin:1", "--population", "fast-typists:2"]
    assert cli.main(["synth", "--out", str(out), "--preset", "smoke", *flags]) == 0
    assert len({Session(p).user for p in load_split(out, "holdout-fast-typists").test}) == 2
    for bad, shown in [("slow", "--population 'slow'"), ("fast-typists:0", "USERS")]:
        assert cli.main(["synth", "--out", str(tmp_path / "q"), "--population", bad]) == 2
        assert shown in capsys.readouterr().err
    with pytest.raises(ValueError, match="speed=0"):
        populations.Population("x", speed=0)
    with pytest.raises(ValueError, match="each name once"):
        replace(TINY, populations=(populations.POPULATIONS["fast-typists"],) * 2)


def test_populations_only_writes_the_held_out_users_alone(populated, tmp_path):
    """The same held-out sessions, byte for byte, without writing the rest again."""
    only = generate(tmp_path / "only", replace(POPULATED, populations_only=True), progress=False)
    assert sorted(p.stem for p in (only / "splits").glob("*.yaml")) == [
        "holdout-fast-typists",
        "holdout-wide-placement",
    ]
    for name in ("fast-typists", "wide-placement"):
        split = load_split(only, f"holdout-{name}")
        assert not split.train and not split.val
        full = load_split(populated, f"holdout-{name}").test
        assert [p.name for p in split.test] == [p.name for p in full]
        for a, b in zip(split.test, full, strict=True):
            assert Session(a).emg.tobytes() == Session(b).emg.tobytes()
    assert len(sessions(only)) == 6 * CORPUS_PRESETS["smoke"].personal_sessions[2]
    with pytest.raises(ValueError, match="populations_only"):
        replace(TINY, populations_only=True)
