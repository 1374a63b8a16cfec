"""The DataLoader path: the same batches as the in-process loop for any number of workers."""

import pandas as pd
import pytest
import torch

from semgkit import models
from semgkit.cli import main
from semgkit.data import load_split
from semgkit.loader import StepBatches, batch_indices, train_loader, workers_needed
from semgkit.synth import generate
from semgkit.windows import WindowedDataset, collate


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("loader") / "smoke", "smoke", seed=0, progress=False)


@pytest.fixture(scope="module")
def dataset(corpus):
    return WindowedDataset(load_split(corpus, "generic").train, 1000, 200, 50, train=True, seed=3)


def test_step_batches_follow_batch_indices_per_rank_and_micro_batch():
    n, size, seed = 13, 8, 4
    for world, accumulate in [(1, 1), (2, 1), (2, 2), (1, 4)]:
        for rank in range(world):
            got = list(
                StepBatches(
                    n, size, seed, steps=5, start=2, rank=rank, world=world, accumulate=accumulate
                )
            )
            assert len(got) == 3 * accumulate
            for s, step in enumerate(range(2, 5)):
                epoch, idx = batch_indices(step, size, n, seed)
                mine = [
                    pair for micro in got[s * accumulate : (s + 1) * accumulate] for pair in micro
                ]
                assert mine == [(epoch, i) for i in idx[rank::world]]
    with pytest.raises(ValueError, match="batch_size 8"):
        StepBatches(n, 8, seed, steps=1, world=3)


def test_an_epoch_pair_reads_that_epochs_window(dataset):
    dataset.set_epoch(2)
    emg, labels = dataset[5]
    dataset.set_epoch(0)
    again = dataset[(2, 5)]
    assert torch.equal(emg, again[0]) and torch.equal(labels, again[1])


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_batches_equal_the_in_process_loop(dataset, workers):
    sampler = StepBatches(len(dataset), 4, seed=1, steps=4, accumulate=2)
    rng = torch.get_rng_state()
    batches = list(train_loader(dataset, sampler, workers, seed=1))
    assert torch.equal(torch.get_rng_state(), rng)  # the training generator is left alone
    assert len(batches) == 8
    for batch, micro in zip(batches, sampler, strict=True):
        want = collate([dataset[pair] for pair in micro])
        assert batch.keys() == want.keys()
        assert all(torch.equal(batch[k], want[k]) for k in want)


def bench_argv(data, out, *flags: str) -> list[str]:
    """``semgkit bench-data`` of 2 batches of 4 half-second windows, ``--out`` last."""
    sizes = "--batches 2 --batch-size 4 --window-s 0.5".split()
    return ["bench-data", "--data", str(data), *flags, *sizes, "--out", str(out)]


def test_bench_data_writes_a_row_per_worker_count(corpus, tmp_path, capsys):
    out = tmp_path / "loader.csv"
    args = bench_argv(corpus, out, "--workers", "0", "1")
    assert main(args) == 0
    df = pd.read_csv(out)
    assert df["workers"].tolist() == [0, 1]
    assert (df["windows"] == 8).all() and (df["windows_per_s"] > 0).all()
    assert (df["peak_rss_main_mb"] > 0).all() and (df["window_samples"] == 1000 + 1800 + 200).all()
    assert "Loader cores a GPU at 250 TFLOP/s needs" in capsys.readouterr().out
    assert main([*args[:-1], str(tmp_path / "loader.txt")]) == 2
    assert "loader.txt" in capsys.readouterr().err


def test_workers_needed_is_gpu_demand_times_cpu_cost_per_window():
    table = workers_needed(cpu_ms_per_window=2.0, gpu_tflops=100.0, window_s=5.0).set_index(
        "preset"
    )
    flops = 3 * models.flops_per_second("large", 4.0) * 5.0
    assert table.loc["large", "windows_per_s_at_gpu"] == pytest.approx(100e12 / flops)
    assert table["loader_cores"].tolist() == pytest.approx(
        (table["windows_per_s_at_gpu"] * 2e-3).tolist()
    )
    assert table["windows_per_s_at_gpu"].is_monotonic_decreasing  # tiny -> large


def test_bench_data_reads_pose_stage_files(tmp_path):
    """``--task pose``: the same benchmark over emg2pose stage files (sEMG, angles, mask)."""
    from semgkit.synth_pose import generate_pose

    pose = generate_pose(tmp_path / "pose", "smoke", progress=False)
    out = tmp_path / "pose.csv"
    args = bench_argv(pose, out, "--task", "pose", "--workers", "0")
    assert main(args) == 0
    df = pd.read_csv(out)
    assert df["task"].tolist() == ["pose"] and (df["windows"] == 8).all()
    assert (df["window_samples"] == 1000 + 1800 + 200).all()
