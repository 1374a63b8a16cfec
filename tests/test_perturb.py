"""Stress perturbations: each deterministic for a seed, exact where it promises to be,
the same on windows and on whole sessions, and `semgkit eval --perturb` scoring under them."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_data import write_emg2qwerty

from semgkit import cli, perturb, perturb_steps, synth
from semgkit.data import Session, load_split
from semgkit.evaluate import evaluate, evaluate_model
from semgkit.format import SAMPLE_RATE
from semgkit.repro import robustness
from semgkit.repro.profiles import load_profile
from semgkit.runs import load_run
from semgkit.train import fit
from tests.test_train import tiny

ALL = [
    "noise:snr=10",
    "noise:snr=5,color=emg",
    "hum:snr=0,freq=60,harmonics=4",
    "dead:ch=3+17",
    "dead:n=4,mode=rail",
    "rotate:k=3",
    "shift:e=1.5",
    "drift:pct=20",
    "jitter:ms=10",
    "mirror",
    "sparse:n=8",
]


def emg(n: int = 6000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2, 16)).astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.sum(np.square(clean, dtype=np.float64)) / np.sum(noise**2))


@pytest.mark.parametrize("spec", ALL)
def test_each_perturbation_is_deterministic_for_a_seed_and_changes_the_signal(spec):
    x = emg()
    one = perturb.parse([spec], seed=1)
    a, b = one.apply(x), perturb.parse([spec], seed=1).apply(x)
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, x)
    assert perturb.parse(one.specs) == perturb.parse([spec])  # a spec reads back as itself
    if spec.startswith(("noise", "hum", "dead:n", "drift")):  # the ones that draw
        assert not np.array_equal(a, perturb.parse([spec], seed=2).apply(x))


def test_a_batch_is_perturbed_item_by_item():
    batch = np.stack([emg(2000, 0), emg(2000, 1)])
    p = perturb.parse(["noise:snr=0", "drift:pct=10"], seed=3)
    out = p.apply(batch)
    assert out.shape == batch.shape
    np.testing.assert_array_equal(out[1], p._window(batch[1], (3, 1)))
    assert not np.array_equal(out[0] - batch[0], out[1] - batch[1])


def test_rotation_by_16_is_the_identity_and_integer_shift_is_rotation():
    x = emg(500)
    np.testing.assert_array_equal(perturb.parse(["rotate:k=16"]).apply(x), x)
    np.testing.assert_array_equal(perturb.parse(["rotate:k=0"]).apply(x), x)
    three = perturb.parse(["rotate:k=3"]).apply(x)
    np.testing.assert_array_equal(three[:, :, 3], x[:, :, 0])
    np.testing.assert_array_equal(perturb.parse(["shift:e=3"]).apply(x), three)
    np.testing.assert_array_equal(perturb.parse(["rotate:k=-13"]).apply(x), three)
    half = perturb.parse(["shift:e=2.5"]).apply(x)
    np.testing.assert_allclose(half[:, :, 3], (x[:, :, 0] + x[:, :, 1]) / 2, rtol=1e-6)


@pytest.mark.parametrize("color", ["white", "emg"])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 12.5, 30.0])
def test_measured_snr_is_within_half_a_db_of_the_request(snr, color):
    x = emg(4000)
    noisy = perturb.parse([f"noise:snr={snr},color={color}"], seed=7).apply(x)
    assert abs(snr_db(x, noisy) - snr) < 0.5


def test_coloured_noise_lies_in_the_semg_band():
    x = np.zeros((8000, 2, 16), dtype=np.float32)
    x[0, 0, 0] = 1.0  # a signal with some power, so the noise has a scale
    noise = perturb.parse(["noise:snr=0,color=emg"]).apply(x) - x
    spectrum = np.abs(np.fft.rfft(noise, axis=0)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    inside = spectrum[(f >= 20) & (f <= 450)].sum()
    assert inside / spectrum.sum() > 0.999


def test_hum_is_at_the_mains_frequency_and_snr():
    x = emg(8000)
    hummed = perturb.parse(["hum:snr=3,freq=60,harmonics=1"]).apply(x)
    assert abs(snr_db(x, hummed) - 3) < 0.5
    spectrum = np.abs(np.fft.rfft(hummed - x, axis=0)).sum(axis=(1, 2))
    assert np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[np.argmax(spectrum)] == 60


@pytest.mark.parametrize("mode", ["zero", "rail"])
def test_dead_electrodes_are_exactly_the_named_channels(mode):
    x = emg(1000)
    out = perturb.parse([f"dead:ch=3+17+31,mode={mode}"]).apply(x)
    flat_in, flat_out = x.reshape(len(x), 32), out.reshape(len(x), 32)
    changed = sorted(np.flatnonzero((flat_in != flat_out).any(axis=0)).tolist())
    assert changed == [3, 17, 31]
    if mode == "zero":
        assert (flat_out[:, [3, 17, 31]] == 0).all()
    else:
        assert np.abs(flat_out[:, [3, 17, 31]]).max() <= 10 * np.sqrt(np.mean(x**2)) + 1e-4
    drawn = perturb.parse(["dead:n=5"], seed=4)
    chosen = drawn.steps[0].channels(perturb_steps.Context(0, 1, 1.0, (4,)))
    dead = np.flatnonzero((drawn.apply(x, 4).reshape(len(x), 32) == 0).all(axis=0))
    assert len(chosen) == 5 and dead.tolist() == chosen


def test_drift_ramps_each_gain_and_jitter_delays_the_right_band():
    x = np.ones((1001, 2, 16), dtype=np.float32)
    drifted = perturb.parse(["drift:pct=20"]).apply(x)
    np.testing.assert_array_equal(drifted[0], x[0])  # gain 1 at the start
    assert (np.abs(drifted[-1] - 1) <= 0.2 + 1e-6).all() and not np.allclose(drifted[-1], 1)
    y = emg(400)
    late = perturb.parse(["jitter:ms=5"]).apply(y)  # 10 samples
    np.testing.assert_array_equal(late[10:, 1], y[:-10, 1])
    np.testing.assert_array_equal(late[:10, 1], 0)
    np.testing.assert_array_equal(late[:, 0], y[:, 0])


def test_mirror_reverses_the_electrode_order_of_each_band_and_is_no_rotation():
    x = emg(300)
    mirrored = perturb.parse(["mirror"]).apply(x)
    for i in range(16):
        np.testing.assert_array_equal(mirrored[:, :, i], x[:, :, (16 - i) % 16])
    np.testing.assert_array_equal(perturb.parse(["mirror", "mirror"]).apply(x), x)
    for k in range(16):  # training's rotations cannot undo it
        assert not np.array_equal(perturb.parse([f"rotate:k={k}"]).apply(x), mirrored)


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16])
def test_a_sparse_band_keeps_its_electrodes_and_interpolates_between_them(n):
    x = emg(300)
    out = perturb.parse([f"sparse:n={n}"]).apply(x)
    step = 16 // n
    np.testing.assert_array_equal(out[:, :, ::step], x[:, :, ::step])  # read as they are
    for p in range(16):
        a, frac = divmod(p, step)
        left, right = x[:, :, a * step], x[:, :, ((a + 1) % n) * step]
        expected = (1 - frac / step) * left + frac / step * right
        np.testing.assert_allclose(out[:, :, p], expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == np.float32
    if n == 8:  # the odd positions: the mean of their neighbours, around the circle
        np.testing.assert_allclose(out[:, :, 15], (x[:, :, 14] + x[:, :, 0]) / 2, rtol=1e-6)
    if n == 16:
        np.testing.assert_array_equal(out, x)


def test_a_sparse_band_must_divide_the_sixteen_positions():
    for bad in ("sparse:n=6", "sparse:n=0", "sparse:n=32"):
        with pytest.raises(ValueError, match=rf"--perturb '{bad}': n=.*must divide 16"):
            perturb.parse([bad])


@pytest.fixture
def session(tmp_path) -> Session:
    return Session(
        write_emg2qwerty(
            tmp_path / "s.hdf5", n=3 * perturb.BLOCK + 123, emg=emg(3 * perturb.BLOCK + 123)
        )
    )


@pytest.mark.parametrize("specs", [["rotate:k=2"], ["noise:snr=5,color=emg", "jitter:ms=-7"], ALL])
def test_a_perturbed_session_reads_the_same_samples_through_any_window(session, specs):
    """Blocks are pure functions of (seed, session, block): overlapping windows, read in
    any order and across block edges, agree; samples outside the session stay zeros."""
    p = perturb.parse(specs, seed=5)
    whole = p.session(session).window(-50, len(session) + 50)
    assert (whole[:50] == 0).all() and (whole[-50:] == 0).all()
    fresh = p.session(session)
    for lo, hi in [(8000, 8400), (100, 9000), (-20, 30), (len(session) - 10, len(session) + 5)]:
        np.testing.assert_array_equal(fresh.window(lo, hi), whole[lo + 50 : hi + 50])
    assert fresh.user == session.user and fresh.key_events()[1] == session.key_events()[1]


def test_session_snr_is_relative_to_the_whole_clean_session(session):
    clean = session.window(0, len(session))
    noisy = perturb.parse(["noise:snr=8"], seed=1).session(session).window(0, len(session))
    assert abs(snr_db(clean, noisy) - 8) < 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("wobble:x=1", "unknown perturbation 'wobble'"),
        ("noise:snr=loud", "snr='loud' is not a number"),
        ("noise:snr=nan", "snr=nan: must be finite"),
        ("noise", "noise needs snr=..."),
        ("noise:snr=1,colour=emg", "noise has no parameter 'colour'"),
        ("noise:snr=1,color=pink", "color='pink'"),
        ("dead:ch=32", "electrode 32 out of range 0-31"),
        ("dead:ch=-1", "electrode -1 out of range"),
        ("dead:ch=a+b", "not integers joined by +"),
        ("rotate:k=1.5", "k='1.5' is not an integer"),
        ("rotate:2", "'2': write PARAM=VALUE"),
        ("hum:freq=400,harmonics=3", "below 1000 Hz"),
    ],
)
def test_bad_specs_give_one_line_errors_naming_the_flag(spec, message):
    with pytest.raises(ValueError) as err:
        perturb.parse([spec])
    text = str(err.value)
    assert text.startswith(f"--perturb {spec!r}: ") and message in text and "\n" not in text


def test_no_specs_is_no_perturbation():
    assert perturb.parse([]) is None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return synth.generate(tmp_path_factory.mktemp("corpus") / "smoke", "smoke", progress=False)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    config = tiny(corpus, steps=3)
    return fit(config, tmp_path_factory.mktemp("runs") / "tiny", progress=False)


@pytest.mark.parametrize("protocol", ["session", "window"])
def test_an_identity_perturbation_scores_bit_for_bit_as_plain_evaluation(corpus, run, protocol):
    model, config = load_run(run)
    paths = load_split(corpus, "generic").test
    plain = evaluate_model(model, paths, config, protocol=protocol)
    identities = (["rotate:k=0"], ["rotate:k=16", "shift:e=0"], ["sparse:n=16"], ["mirror"] * 2)
    for identity in map(perturb.parse, identities):
        same = evaluate_model(model, paths, config, protocol=protocol, perturbation=identity)
        assert same.predictions.equals(plain.predictions) and same.overall == plain.overall


def test_cli_eval_perturb(corpus, run, capsys):
    base = ["eval", "--data", str(corpus), "--run", str(run)]
    assert cli.main(base) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "perturbation" not in plain
    specs = ["--perturb", "noise:snr=-10", "--perturb", "dead:n=8"]
    assert cli.main([*base, *specs, "--perturb-seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["perturbation"] == {"specs": ["noise:snr=-10.0", "dead:n=8"], "seed": 3}
    expected = evaluate(run, corpus, perturbation=perturb.parse(["noise:snr=-10", "dead:n=8"], 3))
    assert report["overall"] == expected.overall
    for bad, shown in [("noise:snr=x", "snr='x'"), ("dead:ch=99", "electrode 99")]:
        assert cli.main([*base, "--perturb", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("semgkit eval: error: --perturb") and shown in err
        assert "\n" not in err


def test_the_chapters_stress_scores_each_severity_as_eval_perturb_does(corpus, run, tmp_path):
    """`robustness.stress` loads a model once for several specs; each cached result is the
    one `evaluate(..., perturbation=...)` gives for that spec alone."""
    P = load_profile("smoke", build_dir=tmp_path)
    P = replace(P, corpus=replace(P.corpus, path=str(corpus)), seed=0)
    specs = ["noise:snr=0", "rotate:k=2", "sparse:n=8"]
    robustness.stress(P, run, specs)
    for spec in specs:
        alone = evaluate(run, corpus, perturbation=perturb.parse([spec], seed=P.seed))
        assert robustness.stressed(P, run, spec)["overall"] == alone.overall
