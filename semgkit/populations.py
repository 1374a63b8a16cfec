"""Held-out populations for the synthetic corpus: users unlike the training population.

Cross-user claims are usually checked on unseen users drawn like the training ones; a
reader of the paper asks for unseen *populations*. A :class:`Population` moves users, drawn
as any other, in one way (band placement, skin and fat, typing speed); `semgkit.synth`
writes them only into ``splits/holdout-<name>.yaml``'s test part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from semgkit.synth_signal import User


@dataclass(frozen=True)
class Population:
    """A group of held-out users unlike the training population: their band placement
    spread (``placement`` scales the +-1.5-electrode rotation), motor-unit spectrum
    (``spectrum`` scales its peak frequency: thicker skin and fat pass lower frequencies),
    amplitude at the skin (``amplitude`` scales the electrode gains) and typing speed
    (``speed`` divides inter-key intervals and hold times). ``users`` of them are drawn,
    each with the personal split's number of test sessions."""

    name: str
    users: int = 4
    placement: float = 1.0
    spectrum: float = 1.0
    amplitude: float = 1.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.name.replace("-", "").isalnum():
            raise ValueError(f"population {self.name!r}: a name of letters, digits and '-'")
        for key in ("users", "placement", "spectrum", "amplitude", "speed"):
            if not getattr(self, key) > 0:
                raise ValueError(
                    f"population {self.name}: {key}={getattr(self, key)} must be positive"
                )

    def user(self, base: User) -> User:
        """``base`` (drawn as any training user) moved into this population."""
        return replace(
            base,
            iki_s=base.iki_s / self.speed,
            hold_s=base.hold_s / self.speed,
            rotation=base.rotation * self.placement,
            gains=base.gains * self.amplitude,
            peak_hz=base.peak_hz * self.spectrum,
        )


# Populations a corpus can hold out (SynthConfig.populations); each differs in one way.
POPULATIONS: dict[str, Population] = {
    "wide-placement": Population("wide-placement", placement=3.0),
    "thick-skin": Population("thick-skin", spectrum=0.6, amplitude=0.6),
    "fast-typists": Population("fast-typists", speed=1.6),
}


def draw_ids(populations: Sequence[Population], taken: set[str], seed: int) -> list[list[str]]:
    """Each population's 8-digit user ids, none in ``taken``: from their own random stream,
    so drawing them changes no other user's id."""
    taken = set(taken)
    rng = np.random.default_rng([seed, 2**31 - 2])
    out = []
    for population in populations:
        ids: list[str] = []
        while len(ids) < population.users:
            uid = str(10**7 + int(rng.integers(9 * 10**7)))
            if uid not in taken:
                taken.add(uid)
                ids.append(uid)
        out.append(sorted(ids))
    return out


def population_flag(text: str) -> Population:
    """``semgkit synth --population NAME[:USERS]`` -> the population."""
    name, _, users = text.partition(":")
    if name not in POPULATIONS:
        raise ValueError(f"--population {text!r}: choose from {', '.join(POPULATIONS)}")
    if users and not (users.isdigit() and int(users) > 0):
        raise ValueError(f"--population {text!r}: USERS must be a positive whole number")
    return replace(POPULATIONS[name], users=int(users or POPULATIONS[name].users))
