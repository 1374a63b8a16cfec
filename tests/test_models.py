"""The transformer family and its presets: sizes, shapes, causality, masking, configs."""

import json

import pytest
import torch
import torch.nn.functional as F

from semgkit import models, paper
from semgkit.charset import CHARSET
from semgkit.models import (
    PRESETS,
    ModelConfig,
    build,
    config_dict,
    count_params,
    flops_per_second,
    resolve,
)
from semgkit.tds import TDSConfig

torch.set_num_threads(1)

# The paper's Table 2 sizes (semgkit.paper), with the tolerance each count must meet.
TOLERANCE = {"tiny": 0.05, "small": 0.05, "large": 0.05, "tds": 0.10}
PAPER_PARAMS = {name: (paper.TABLE2[name].parameters, tol) for name, tol in TOLERANCE.items()}
LADDER = ["lap-xxs", "lap-xs", "lap-s", "lap-m", "lap-l"]
PAPER_FAMILY = ["tiny", "small", "medium", "base", "large"]
TRANSFORMERS = [n for n, c in PRESETS.items() if isinstance(c, ModelConfig)]


@pytest.fixture(scope="module")
def counts() -> dict[str, int]:
    return {name: count_params(build(name)) for name in PRESETS}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_paper_parameter_counts(counts, name):
    paper, tolerance = PAPER_PARAMS[name]
    print(f"{name}: {counts[name]:,} parameters (paper {paper / 1e6:g}M)")
    assert abs(counts[name] - paper) / paper <= tolerance


def test_paper_presets_have_the_papers_shape():
    assert (PRESETS["tiny"].layers, PRESETS["tiny"].d_model) == (10, 128)
    assert (PRESETS["small"].layers, PRESETS["small"].d_model) == (6, 256)
    assert (PRESETS["large"].layers, PRESETS["large"].d_model) == (8, 1024)
    assert PRESETS["tiny"].conv_strides == (5, 2, 2) and PRESETS["tiny"].hop == 20
    assert PRESETS["tiny"].feat_norm == "group" and PRESETS["tiny"].causal


def test_paper_family_grows_from_tiny_to_large(counts):
    sizes = [counts[n] for n in PAPER_FAMILY]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_laptop_ladder(counts):
    sizes = [counts[n] for n in LADDER]
    print("laptop ladder:", dict(zip(LADDER, sizes, strict=True)))
    assert all(a < b for a, b in zip(sizes, sizes[1:], strict=False))
    assert sizes[-1] / sizes[0] >= 30
    assert sizes[-1] <= 1.05 * counts["tiny"]
    ratio = counts["lap-l"] / counts["lap-student"]
    print(f"lap-l / lap-student = {ratio:.1f}")
    assert ratio >= 40
    assert counts["tds-laptop"] < counts["tds"]


def test_count_params_counts_every_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2, bias=False))
    assert count_params(model) == 3 * 4 + 4 + 4 * 2


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_forward_and_backward(name):
    model = build(name).train()
    T = 1000
    emg = torch.randn(2, T, 2, 16)
    out = model(emg)
    frames = T // model.hop
    assert out.shape == (2, frames, CHARSET.num_classes)
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    loss = F.ctc_loss(
        out.transpose(0, 1),
        targets,
        torch.full((2,), frames),
        torch.tensor([3, 2]),
        blank=CHARSET.blank,
    )
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) >= 0.9 * len(list(model.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


def test_large_forward_five_seconds_batch_one():
    model = build("large").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 10_000, 2, 16))
    assert out.shape == (1, 500, CHARSET.num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["tiny", "lap-s", "lap-student"])
def test_ten_thousand_samples_give_500_frames_of_log_probabilities(name):
    model = build(name).eval()
    with torch.no_grad():
        out = model(torch.randn(3, 10_000, 2, 16))
    assert model.hop == 20
    assert out.shape == (3, 500, 99)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(3, 500))
    assert (out <= 0).all()


def test_output_lengths():
    model = build("lap-s")
    lengths = torch.tensor([10_000, 999, 20, 40, 0])
    assert model.output_lengths(lengths).tolist() == [500, 49, 1, 2, 0]
    with torch.no_grad():
        for n in (20, 39, 40, 1001):
            assert model.eval()(torch.randn(1, n, 2, 16)).shape[1] == n // 20


def _perturbed_after(model, t: int, T: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(1, T, 2, 16)
    y = x.clone()
    y[:, t:] += torch.randn_like(y[:, t:])
    with torch.no_grad():
        return model(x)[0], model(y)[0]


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("lap-s", {}),
        ("lap-student", {}),
        ("lap-l", {}),
        ("tiny", {"feat_norm": "batch"}),
        ("tds-laptop", {}),
    ],
)
@pytest.mark.parametrize("t", [400, 1010, 1999])
def test_causality(name, overrides, t):
    """Frame i sees samples before (i + 1) * hop: changing samples from t on leaves every
    frame that ends at or before t unchanged, and changes the frame that contains t."""
    model = build(name, **overrides).eval()
    a, b = _perturbed_after(model, t)
    before = t // model.hop
    torch.testing.assert_close(a[:before], b[:before], rtol=0, atol=1e-5)
    assert (a[before] - b[before]).abs().max() > 1e-4


def test_non_causal_attention_looks_ahead():
    model = build("lap-s", causal=False).eval()
    a, b = _perturbed_after(model, 1500)
    assert (a[:50] - b[:50]).abs().max() > 1e-4  # frames a full second earlier change


def test_group_norm_featurizer_sees_the_whole_window():
    """The paper's GroupNorm(C, C) normalises each channel over the window, so even with
    causal attention the paper presets are not streamable; the laptop presets use BatchNorm."""
    model = build("tiny").eval()
    a, b = _perturbed_after(model, 1500)
    assert (a[:50] - b[:50]).abs().max() > 1e-4
    assert all(PRESETS[n].feat_norm == "batch" for n in [*LADDER, "lap-student"])


def test_padding_does_not_reach_the_shorter_item():
    model = build("lap-s").eval()
    short, long = torch.randn(1, 1000, 2, 16), torch.randn(1, 2000, 2, 16)
    batch = torch.cat([F.pad(short, (0, 0, 0, 0, 0, 1000)), long])
    with torch.no_grad():
        out = model(batch, torch.tensor([1000, 2000]))
        torch.testing.assert_close(out[0, :50], model(short)[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(out[1], model(long)[0], rtol=0, atol=1e-5)


def under_seeds(model, x: torch.Tensor, *seeds: int) -> list[torch.Tensor]:
    """``model(x)`` without gradients once after each ``torch.manual_seed(seed)``."""
    outs = []
    with torch.no_grad():
        for seed in seeds:
            torch.manual_seed(seed)
            outs.append(model(x))
    return outs


def test_time_masking_only_in_training():
    x = torch.randn(2, 4000, 2, 16)
    model = build("lap-s", dropout=0.0)
    e1, e2 = under_seeds(model.eval(), x, 1, 2)
    assert torch.equal(e1, e2)  # eval: deterministic, nothing masked
    t1, t2 = under_seeds(model.train(), x, 1, 2)
    assert not torch.allclose(t1, t2)  # train: masks drawn from the torch seed
    unmasked = build("lap-s", dropout=0.0, time_mask_p=0.0).train()
    unmasked.load_state_dict(model.state_dict())
    u1, u2 = under_seeds(unmasked, x, 1, 2)
    torch.testing.assert_close(u1, u2)
    assert not torch.allclose(u1, t1)


def test_time_mask_replaces_spans_with_the_mask_embedding():
    model = build("lap-s", time_mask_p=0.5, time_mask_span=10).train()
    x = torch.randn(2, 200, model.config.d_model)
    masked = model._time_mask(x)
    hit = (masked != x).any(-1)  # (B, T) frames replaced
    assert hit.any(1).all()
    torch.testing.assert_close(masked[hit], model.mask_embedding.expand(int(hit.sum()), -1))
    assert hit.float().mean() <= 0.5 + 1e-6


@pytest.mark.parametrize("preset", ["lap-xs", "tds-laptop"])
def test_head_is_chosen_by_configuration(preset):
    ctc = build(preset).eval()
    pose = build(preset, head="pose", num_classes=20).eval()
    encoder = {k: v for k, v in ctc.state_dict().items() if not k.startswith("head.")}
    missing = pose.load_state_dict(encoder, strict=False).missing_keys
    assert missing and all(k.startswith("head.") for k in missing)  # the encoder is shared
    x = torch.randn(1, 400, 2, 16)
    with torch.no_grad():
        angles, log_probs = pose(x), ctc(x)
    assert angles.shape[:2] == log_probs.shape[:2] and angles.shape[2] == 20
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]))
    assert not torch.allclose(angles.exp().sum(-1), torch.ones(angles.shape[:2]))  # no softmax


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"d_model": 100, "heads": 16}, "divisible"),
        ({"feat_norm": "layer"}, "feat_norm"),
        ({"head": "no-such"}, "head"),
        ({"head": "pose"}, "num_classes=99"),
    ],
)
def test_bad_config_errors(overrides, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**overrides)
    with pytest.raises(ValueError, match=field):
        build("tiny", **overrides)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match=r"no-such.*lap-s.*tiny"):
        build("no-such")
    with pytest.raises(ValueError, match="no-such"):
        flops_per_second("no-such")


def test_bad_input_shape_is_named():
    model = build("lap-xs")
    with pytest.raises(ValueError, match=r"\(batch, samples, 2, 16\)"):
        model(torch.randn(1, 400, 32))


def test_window_shorter_than_a_frame_is_a_clear_error():
    model = build("lap-s").eval()
    with pytest.raises(ValueError, match="samples"):
        model(torch.randn(1, 19, 2, 16))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_dict_round_trips_through_json(name):
    config = PRESETS[name]
    data = json.loads(json.dumps(config_dict(config)))
    assert data["arch"] == ("tds" if isinstance(config, TDSConfig) else "transformer")
    assert resolve(data) == config
    assert count_params(build(data)) == count_params(build(name))


def test_resolve_applies_overrides():
    config = resolve("lap-s", layers=7, causal=False)
    assert (config.layers, config.causal, config.d_model) == (7, False, PRESETS["lap-s"].d_model)
    assert PRESETS["lap-s"].layers != 7  # presets are not mutated
    assert resolve(PRESETS["tiny"]) is PRESETS["tiny"]


def test_flops_per_second_positive_and_growing():
    flops = {name: flops_per_second(name) for name in PRESETS}
    print({k: f"{v / 1e9:.3f} GFLOP/s" for k, v in flops.items()})
    assert all(v > 0 for v in flops.values())
    for ladder in (LADDER, PAPER_FAMILY):
        values = [flops[n] for n in ladder]
        assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert flops["lap-student"] < flops["lap-l"]


def test_flops_cover_at_least_the_dense_layers():
    """Each parameter of a linear layer is used once per frame: 2 FLOPs per weight per frame
    is a lower bound for the transformer blocks alone."""
    config = PRESETS["small"]
    block_weights = config.layers * (4 + 2 * config.ff_mult) * config.d_model**2
    frames_per_s = models.SAMPLE_RATE / config.hop
    assert flops_per_second("small") >= 2 * block_weights * frames_per_s
    assert flops_per_second(resolve("small", causal=False)) > flops_per_second("small")
