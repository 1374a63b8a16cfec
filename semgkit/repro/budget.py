"""A profile's GPU budget: what each run of chapters 3, 4 and 7 costs, from measured FLOPs
and memory per window, projected to hours and micro-batches per GPU class.

FLOPs are *measured*: ``torch.utils.flop_counter.FlopCounterMode`` counts every matmul and
convolution of one training step (forward and backward) on one window of the profile's
length, on CPU. Memory per window is :mod:`semgkit.memory`'s (saved tensors, fp32). The
hours are a *projection*: those FLOPs times the windows a run sees, over a sustained rate
assumed per GPU class (``ASSUMED_TFLOPS``, not measured here). Evaluation and data loading
are left out. Book apparatus: outside the run key.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from semgkit import memory, models
from semgkit.format import BANDS, ELECTRODES, SAMPLE_RATE
from semgkit.repro.profiles import Profile

# Sustained training throughput assumed per GPU class, TFLOP/s (an assumption, not a
# measurement): 16 GB = T4 or V100-16, without bf16 tensor cores, so about half a T4's
# fp32 peak (8.1); 24 GB = A10 or L4 in bf16; 40 GB = A100-40; 80 GB = A100-80 or H100.
ASSUMED_TFLOPS = {16: 4.0, 24: 25.0, 40: 60.0, 80: 120.0}
HELD_OUT_USERS = 8  # personalized when personalize_users is 0 (emg2qwerty's test users)


@functools.cache
def flops_per_window(preset: str, window_s: float, backward: bool = True) -> float:
    """Measured FLOPs of one training step (forward + backward) on one window; forward only
    (a teacher's pass) with ``backward`` False."""
    model = models.build(preset)
    x = torch.randn(1, int(round(window_s * SAMPLE_RATE)), len(BANDS), ELECTRODES)
    with FlopCounterMode(display=False) as counter:
        if backward:
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
    return float(counter.get_total_flops())


def _runs(P: Profile) -> list[dict[str, Any]]:
    """Every training run of chapters 3 and 4, the fine-tunings, and chapter 7's
    leave-users-out runs (``[robustness] user_counts``), with its windows."""
    t, s, d = P.train, P.scaling, P.distill
    windows = t.steps * t.batch_size
    runs = [
        {"run": f"{p} seed {seed}", "preset": p, "windows": windows}
        for p in dict.fromkeys([*s.ladder, s.baseline, d.teacher])
        for seed in P.model_seeds(p)
    ]
    runs += [
        {"run": f"{d.student} alone seed {seed}", "preset": d.student, "windows": windows}
        for seed in P.student_seeds()
        if not (d.student in s.ladder and seed in P.model_seeds(d.student))
    ]
    distilled = {(d.temperature, d.alpha, seed) for seed in P.student_seeds()}
    distilled |= {(temp, d.alpha, seed) for temp in d.temperatures for seed in P.seeds()}
    distilled |= {(d.temperature, a, seed) for a in d.alphas for seed in P.seeds()}
    for i, (temp, a, seed) in enumerate(sorted(distilled)):
        runs.append(
            {
                "run": f"{d.student} distilled T={temp:g} alpha={a:g} seed {seed}",
                "preset": d.student,
                "windows": windows,
                "teacher": d.teacher if i == 0 else None,  # the first fills the output cache
            }
        )
    runs += [
        {"run": f"{p} on the first {k} training users", "preset": p, "windows": windows}
        for k in P.robustness.user_counts
        for p in (d.teacher, d.student)
    ]
    users = 0 if P.measure() == "single-user" else (t.personalize_users or HELD_OUT_USERS)
    tuned = {p: len(P.model_seeds(p)) for p in [*s.ladder, s.baseline, d.teacher]}
    tuned.setdefault(d.student, len(P.student_seeds()))  # the student alone
    tuned = {(p, p): n for p, n in tuned.items()}
    tuned[(f"{d.student} distilled", d.student)] = len(P.student_seeds())
    runs += [
        {
            "run": f"{name} personalized x {users} users x {n} seed(s)",
            "preset": p,
            "windows": n * users * t.personalize_steps * t.batch_size,
        }
        for (name, p), n in tuned.items()
        if users
    ]
    return runs


def budget(P: Profile) -> pd.DataFrame:
    """One row per run: measured GFLOP per window, windows, projected GPU hours per class,
    and the measured memory of the profile's micro-batch on one GPU, projected per class."""
    window = P.window.past_s + P.window.window_s + P.window.future_s
    micro = P.train.batch_size // P.train.accumulate  # on one GPU
    rows = []
    for r in _runs(P):
        flops = flops_per_window(r["preset"], window) * r["windows"]
        if r.get("teacher"):
            flops += flops_per_window(r["teacher"], window, backward=False) * r["windows"]
        per_window = memory.per_window_bytes(r["preset"], window)
        fixed = memory.state_bytes(r["preset"], r.get("teacher"))
        row = {
            "run": r["run"],
            "GFLOP per window (measured)": round(flops_per_window(r["preset"], window) / 1e9, 2),
            "windows": r["windows"],
            "PFLOP": round(flops / 1e15, 2),
            f"micro-batch {micro} GiB (projection)": round(
                (fixed + micro * per_window) / memory.GIB, 2
            ),
        }
        for gb, tflops in ASSUMED_TFLOPS.items():
            row[f"{gb} GB h (projection)"] = round(flops / (tflops * 1e12) / 3600, 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    total = {"run": "total", "windows": int(table["windows"].sum())}
    total |= {c: round(table[c].sum(), 2) for c in table.columns if c.endswith("h (projection)")}
    total["PFLOP"] = round(table["PFLOP"].sum(), 2)
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)
