"""A schematic hand drawn from emg2pose's 20 joint angles, for the book's figures only.

This is not emg2pose's hand model (UmeTrack's, with its own licence, which semgkit does not
carry): the palm is flat, bone lengths are nominal (in palm widths), each finger is a chain
turned in the palm's plane by its abduction angle and bent towards the palm by the sum of
its flexion angles so far. It shows how a pose moves, not where a fingertip is in
millimetres. The 3-D points are seen from above the back of the hand, tilted so that
flexion shows as a finger curling down the page.
"""

from __future__ import annotations

import numpy as np

from semgkit.pose_format import NUM_JOINTS

# finger -> (knuckle x, knuckle y, resting spread in rad, bone lengths); thumb from its CMC
FINGER_GEOMETRY = {
    "thumb": (-0.55, -0.55, -0.9, (0.45, 0.32, 0.27)),
    "index": (-0.36, 0.0, -0.12, (0.45, 0.25, 0.2)),
    "middle": (-0.12, 0.05, 0.0, (0.5, 0.3, 0.22)),
    "ring": (0.12, 0.02, 0.1, (0.47, 0.28, 0.2)),
    "pinky": (0.36, -0.05, 0.22, (0.37, 0.2, 0.18)),
}
# finger -> (abduction joint, flexion joints proximal to distal), in pose_format.JOINTS order
FINGER_JOINTS = {
    "thumb": (1, (0, 2, 3)),
    **{f: (4 * k, (4 * k + 1, 4 * k + 2, 4 * k + 3)) for k, f in enumerate(FINGER_GEOMETRY) if k},
}
PALM = [(-0.5, -1.0), (-0.36, 0.0), (-0.12, 0.05), (0.12, 0.02), (0.36, -0.05), (0.5, -1.0)]
TILT = np.radians(30.0)  # the view: above the back of the hand, tilted towards the wrist


def finger_points(angles: np.ndarray) -> dict[str, np.ndarray]:
    """(4, 3) points of each finger (knuckle to tip) for one pose of 20 angles (radians)."""
    angles = np.asarray(angles, dtype=float)
    if angles.shape != (NUM_JOINTS,):
        raise ValueError(f"hand sketch: {angles.shape} angles, need ({NUM_JOINTS},)")
    out = {}
    for finger, (x, y, spread, bones) in FINGER_GEOMETRY.items():
        aa, flexions = FINGER_JOINTS[finger]
        heading = spread + angles[aa]
        along = np.array([np.sin(heading), np.cos(heading), 0.0])
        points, bend = [np.array([x, y, 0.0])], 0.0
        for length, joint in zip(bones, flexions, strict=True):
            bend += angles[joint]
            step = along * np.cos(bend) + np.array([0.0, 0.0, -1.0]) * np.sin(bend)
            points.append(points[-1] + length * step)
        out[finger] = np.stack(points)
    return out


def _view(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Screen coordinates of 3-D points under the tilted view."""
    return points[:, 0], points[:, 1] * np.cos(TILT) + points[:, 2] * np.sin(TILT)


def hand_lines(angles: np.ndarray) -> tuple[list[float | None], list[float | None]]:
    """x and y of the palm and the five fingers as one polyline broken by ``None`` (one
    plotly trace per hand)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    palm = np.array([(x, y, 0.0) for x, y in PALM])
    for points in [palm, *finger_points(angles).values()]:
        x, y = _view(points)
        xs += [*map(float, x), None]
        ys += [*map(float, y), None]
    return xs, ys
