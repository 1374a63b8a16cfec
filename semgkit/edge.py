"""Energy and time on edge processors, PROJECTED from a model's operation count.

Nothing here is measured: each figure is a model's forward operations per second of sEMG
(`models.flops_per_second`, 2 x multiply-adds) times a processor's published energy per
operation, or divided by its published peak rate. Published efficiencies are int8 figures
at the chip's best operating point; the projection ignores memory traffic, idle power,
control code and utilisation below the peak, so it is a lower bound on energy and time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeProcessor:
    name: str
    joules_per_op: float  # published energy per (int8) operation
    peak_ops_per_s: float  # published peak rate
    source: str


EDGE_PROCESSORS = (
    EdgeProcessor(
        "GreenWaves GAP9 (hearable/wearable SoC)",
        joules_per_op=330e-6 / 1e9,  # "330 uW/GOP"
        peak_ops_per_s=2 * 32.2e9,  # "32.2 GMACs for ML tasks"
        source="GAP9 specifications as listed in github.com/pulp-platform/gap9-shield (README): "
        "330 uW/GOP, 32.2 GMAC/s for ML",
    ),
    EdgeProcessor(
        "Google Coral Edge TPU",
        joules_per_op=0.5 / 1e12,  # "2 TOPS per watt"
        peak_ops_per_s=4e12,  # "4 TOPS"
        source="coral.ai/docs/edgetpu/faq: 4 TOPS (int8) using 2 W, 2 TOPS per watt",
    ),
)
UTILISATION = 0.1  # assumed fraction of the published peak a small streaming model reaches


def projection(flops_per_s: float, chunk_s: float = 0.04) -> dict[str, float]:
    """Per processor: projected energy per second of sEMG (millijoules) and the projected
    time per chunk (milliseconds) at ``UTILISATION`` of its published peak."""
    row = {}
    for p in EDGE_PROCESSORS:
        key = p.name.split(" (")[0].split()[-1].lower().replace("tpu", "edgetpu")
        row[f"proj_{key}_mj_per_s"] = flops_per_s * p.joules_per_op * 1e3
        row[f"proj_{key}_chunk_ms"] = flops_per_s * chunk_s / (p.peak_ops_per_s * UTILISATION) * 1e3
    return row
