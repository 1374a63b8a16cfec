"""What every chapter does first: read the profile, fix seeds and threads, set up plotly.

Plotly figures are stored as plotly's own mimetype (interactive in JupyterLab); the static
HTML edition (`tools/book.py html`) turns them into HTML that draws with a local plotly.js.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import plotly.io as pio
import torch

from semgkit.profiles import Profile, load_profile


def start(profile: str, build_dir: str | Path, data_dir: str | Path | None = None) -> Profile:
    """Load the profile, seed every RNG, size torch's thread pool; returns the profile.

    Its ``build_dir`` (absolute, created) is where the chapter writes its outputs.
    """
    P = load_profile(profile, data_dir=data_dir or None, build_dir=Path(build_dir).resolve())
    random.seed(P.seed)
    np.random.seed(P.seed)
    torch.manual_seed(P.seed)
    torch.set_num_threads(P.train.num_threads)
    pio.renderers.default = "plotly_mimetype"
    P.build_dir.mkdir(parents=True, exist_ok=True)
    return P
