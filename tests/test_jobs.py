"""Runs trained side by side (semgkit.jobs) end with the same weights as one after another."""

import dataclasses

import pytest
import torch

from semgkit import experiments, jobs
from semgkit.profiles import load_profile


def _boom(x: int) -> int:
    if x == 2:
        raise ValueError("job 2 failed")
    return x * 10


def test_run_jobs_keeps_order_and_raises_the_failure():
    assert jobs.run_jobs(_boom, [(1,), (3,)], jobs=2) == [10, 30]
    assert jobs.run_jobs(_boom, [(4,)], jobs=2) == [40]  # one job: in this process
    with pytest.raises(ValueError, match="job 2 failed"):
        jobs.run_jobs(_boom, [(1,), (2,), (3,)], jobs=2)
    with pytest.raises(ValueError, match="jobs=0"):
        jobs.run_jobs(_boom, [(1,)], jobs=0)


def _profile(tmp_path, name, n_jobs):
    P = load_profile("smoke", build_dir=tmp_path / name)
    train = dataclasses.replace(P.train, steps=3, num_threads=1, jobs=n_jobs)
    return dataclasses.replace(P, train=train)


def test_train_many_side_by_side_equals_one_after_another(tmp_path):
    weights = {}
    for name, n_jobs in [("serial", 1), ("parallel", 2)]:
        P = _profile(tmp_path, name, n_jobs)
        configs = [experiments.train_config(P, "lap-student", seed=s) for s in (0, 1)]
        dirs = experiments.train_many(P, configs)
        assert [d.name for d in dirs] == [experiments.run_dir(P, c).name for c in configs]
        weights[name] = [torch.load(d / "last.pt", weights_only=False)["model"] for d in dirs]
    for serial, parallel in zip(weights["serial"], weights["parallel"], strict=True):
        assert serial.keys() == parallel.keys()
        for k in serial:
            assert torch.equal(serial[k], parallel[k]), k
    seed0, seed1 = weights["serial"]
    assert any(not torch.equal(seed0[k], seed1[k]) for k in seed0)  # the seeds did differ
