"""Runs trained side by side (semgkit.repro.jobs) end with the same weights as one after another."""

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from semgkit.repro import jobs, recipes, schedule
from semgkit.repro.profiles import load_profile


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
        configs = [recipes.train_config(P, "lap-student", seed=s) for s in (0, 1)]
        dirs = schedule.train_many(P, configs)
        assert [d.name for d in dirs] == [recipes.run_dir(P, c).name for c in configs]
        weights[name] = [torch.load(d / "last.pt", weights_only=False)["model"] for d in dirs]
    for serial, parallel in zip(weights["serial"], weights["parallel"], strict=True):
        assert serial.keys() == parallel.keys()
        for k in serial:
            assert torch.equal(serial[k], parallel[k]), k
    seed0, seed1 = weights["serial"]
    assert any(not torch.equal(seed0[k], seed1[k]) for k in seed0)  # the seeds did differ


def _step(kind: str, path: str) -> str:
    if kind == "write":
        time.sleep(1.0)
        Path(path).write_text("written")
        return "wrote"
    return Path(path).read_text()  # FileNotFoundError unless the writer has finished


def test_a_job_starts_only_after_the_one_it_waits_for(tmp_path):
    f = str(tmp_path / "shared")
    # two workers: without `after` the reader would start beside the writer and fail
    out = jobs.run_jobs(_step, [("write", f), ("read", f)], jobs=2, after=[None, 0])
    assert out == ["wrote", "written"]
    # the prerequisite may come later in the list (the list is a priority, not an order)
    f2 = str(tmp_path / "other")
    out = jobs.run_jobs(_step, [("read", f2), ("write", f2)], jobs=1, after=[1, None])
    assert out == ["written", "wrote"]
    with pytest.raises(ValueError, match="waits for itself"):
        jobs.run_jobs(_step, [("read", f), ("write", f)], jobs=2, after=[1, 0])
    with pytest.raises(ValueError, match="no such job"):
        jobs.run_jobs(_step, [("read", f)], jobs=2, after=[3])
    with pytest.raises(ValueError, match="2 entries for 1 jobs"):
        jobs.run_jobs(_step, [("read", f)], jobs=2, after=[None, None])


def _hit_rates(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["teacher_cache_hit_rate"] for r in rows if "teacher_cache_hit_rate" in r]


def test_distilled_seeds_on_one_data_seed_compute_the_teacher_once(tmp_path):
    """Training seeds vary the weights, not the windows: the second distilled seed waits
    for the first and reads every teacher output from the cache it filled; the first
    waits for the teacher, trained in the same call (listed last)."""
    P = _profile(tmp_path, "distil", 2)
    teacher_config = recipes.teacher_config(P)
    teacher = recipes.run_dir(P, teacher_config)
    configs = [recipes.distilled_config(P, teacher, 2.0, 0.5, seed=s) for s in (0, 1)]
    assert configs[0].order_seed() == configs[1].order_seed() == P.seed
    first, second, _ = schedule.train_many(P, [*configs, teacher_config])
    assert _hit_rates(first)[0] == 0.0
    assert set(_hit_rates(second)) == {1.0}
    a, b = (torch.load(d / "last.pt", weights_only=False)["model"] for d in (first, second))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the seeds did differ


def _timed(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_a_free_worker_takes_the_next_job_without_waiting_for_the_others():
    (_, long_end), _, (third_start, _) = jobs.run_jobs(_timed, [(3.0,), (0.1,), (0.1,)], jobs=2)
    assert third_start < long_end  # started beside the long job, not after it
