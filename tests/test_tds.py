import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from semgkit.charset import CHARSET
from semgkit.tds import (
    TDS_LAPTOP,
    TDS_PUBLISHED,
    LogSpectrogram,
    TDSConfig,
    TDSConvNet,
    spec_augment,
    tds_flops_per_second,
)

PAPER_TDS_PARAMS = 5.3e6  # emg2qwerty's TDS-ConvNet, as reported


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def published() -> TDSConvNet:
    torch.manual_seed(0)
    return TDSConvNet(TDS_PUBLISHED).eval()


def test_published_parameter_count(published):
    count = n_params(published)
    print(f"tds (published config): {count:,} parameters; paper 5.3M")
    print(f"tds-laptop: {n_params(TDSConvNet(TDS_LAPTOP)):,} parameters")
    assert abs(count - PAPER_TDS_PARAMS) / PAPER_TDS_PARAMS < 0.10


@pytest.mark.parametrize("samples", [16, 17, 31, 100, 2000, 4001])
def test_shapes_and_output_lengths(published, samples):
    with torch.no_grad():
        out = published(torch.randn(2, samples, 2, 16))
    assert out.shape == (2, samples // 16, CHARSET.num_classes)
    lengths = torch.tensor([samples, samples - 1, 15, 0])
    assert published.output_lengths(lengths).tolist() == [n // 16 for n in lengths.tolist()]
    assert published.hop == 16


def test_log_probs_normalised(published):
    with torch.no_grad():
        out = published(torch.randn(1, 1000, 2, 16))
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(out.shape[:2]))


def test_causal(published):
    x = torch.randn(1, 4000, 2, 16)
    p = 1000 + 5  # not on a hop boundary
    y = x.clone()
    y[:, p:] += torch.randn_like(y[:, p:])
    with torch.no_grad():
        a, b = published(x), published(y)
    done = p // 16  # frames 0 .. done-1 end at or before sample p
    torch.testing.assert_close(a[:, :done], b[:, :done], rtol=0, atol=1e-5)
    assert not torch.allclose(a[:, done], b[:, done])  # the frame holding sample p moves


def test_non_causal_looks_ahead():
    torch.manual_seed(0)
    model = TDSConvNet(TDSConfig(causal=False, **_small())).eval()
    x = torch.randn(1, 2000, 2, 16)
    y = x.clone()
    y[:, 1000:] += 1.0
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (1, 125, 99)
    assert not torch.allclose(a[:, 1000 // 16 - 4], b[:, 1000 // 16 - 4])


def test_padding_does_not_reach_shorter_sequence(published):
    short, long = torch.randn(3000, 2, 16), torch.randn(4000, 2, 16)
    batch = torch.stack([torch.cat([short, 5 * torch.randn(1000, 2, 16)]), long])
    lengths = torch.tensor([3000, 4000])
    with torch.no_grad():
        together = published(batch, lengths)
        alone = published(short[None])
    frames = int(published.output_lengths(lengths)[0])
    assert alone.shape[1] == frames
    torch.testing.assert_close(together[:1, :frames], alone, rtol=0, atol=1e-5)


def _small() -> dict:
    return dict(mlp_features=32, block_channels=(8, 8), kernel_width=8)


@pytest.mark.outcome
def test_learns_and_gradients_reach_all_parameters():
    torch.manual_seed(0)
    model = TDSConvNet(TDS_LAPTOP).train()
    emg = torch.randn(2, 3000, 2, 16)
    input_lengths = torch.tensor([3000, 2500])
    targets = torch.randint(0, CHARSET.blank, (2, 8))
    target_lengths = torch.tensor([8, 6])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(30):
        log_probs = model(emg, input_lengths)
        loss = torch.nn.functional.ctc_loss(
            log_probs.transpose(0, 1),
            targets,
            model.output_lengths(input_lengths),
            target_lengths,
            blank=CHARSET.blank,
        )
        opt.zero_grad()
        loss.backward()
        if step == 0:
            silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
            assert silent == []
        opt.step()
        losses.append(loss.item())
    print(f"CTC loss over 30 Adam steps: {losses[0]:.2f} -> {losses[-1]:.2f}")
    assert losses[-1] < 0.7 * losses[0]


def test_spec_augment_only_in_training():
    torch.manual_seed(0)
    model = TDSConvNet(TDSConfig(**_small()))
    x = torch.randn(1, 2000, 2, 16)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_flops_equal_counted_dense_ops():
    """The estimate is exactly torch's count of conv/matmul flops over one second."""
    for config in (TDS_PUBLISHED, TDS_LAPTOP):
        model = TDSConvNet(config).eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.randn(1, 2000, 2, 16))  # one second at 2 kHz
        estimate = tds_flops_per_second(config)
        print(f"mlp_features={config.mlp_features}: {estimate / 1e9:.3f} GFLOP/s per s of sEMG")
        assert estimate == counter.get_total_flops()


def test_spectrogram_matches_torch_stft():
    config = TDSConfig()
    spec = LogSpectrogram(config)
    emg = torch.randn(2, 1000, 2, 16, generator=torch.Generator().manual_seed(0))
    ours = spec(emg)  # (2, 2, 16, 33, 62)
    x = torch.nn.functional.pad(emg.permute(0, 2, 3, 1).reshape(64, 1000), (48, 0))
    window = torch.hann_window(64)
    ref = torch.stft(x, 64, 16, window=window, center=False, return_complex=True)
    ref = torch.log10(ref.abs().square() / window.square().sum() + 1e-6)
    assert ours.shape == (2, 2, 16, 33, 1000 // 16)
    # A DFT as a float32 convolution against torch's FFT: the kernels the CPU picks round
    # differently (1.1e-4 seen under ATEN_CPU_CAPABILITY=default, where log10 amplifies the
    # error of the smallest powers), so 5e-4 in log10 units: 0.12 % of power.
    torch.testing.assert_close(ours.reshape(64, 33, -1), ref, rtol=0, atol=5e-4)


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(block_channels=(24, 25)), "block_channels"),
        (dict(n_fft=8, hop=16), "n_fft"),
        (dict(offsets=()), "offsets"),
        (dict(kernel_width=0), "kernel_width"),
    ],
)
def test_bad_config_names_field(bad, field):
    with pytest.raises(ValueError, match=field):
        TDSConfig(**bad)


def test_bad_input_shape(published):
    with pytest.raises(ValueError, match=r"\(batch, samples, 2, 16\)"):
        published(torch.randn(1, 100, 32))
    with pytest.raises(ValueError, match="hop=16"):
        published(torch.randn(1, 10, 2, 16))


def test_spec_augment_masks_bounded_spans():
    torch.manual_seed(0)
    config = TDSConfig()  # up to 3 time masks < 25 frames, 2 frequency masks < 4 bins
    out = spec_augment(torch.ones(8, 2, 16, 33, 200), config)
    time_masked = (out == 0).all(dim=-2)  # (example, band, electrode, frame)
    zero_frames = time_masked.sum(dim=-1)
    zero_bins = (out == 0).all(dim=-1).sum(dim=-1)
    assert zero_frames.max() <= 3 * 24 and zero_bins.max() <= 2 * 3
    assert zero_frames.float().mean() > 1 and zero_bins.float().mean() > 0.1
    assert (time_masked != time_masked[:, :1, :1]).any()  # electrodes draw their own masks
