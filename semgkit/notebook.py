"""What every chapter does first: read the profile, fix seeds and threads, set up plotly.

Plotly figures are stored as plotly's own mimetype (interactive in JupyterLab); the static
HTML edition (`tools/book.py html`) turns them into HTML that draws with a local plotly.js.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import plotly.io as pio
import torch

from semgkit.profiles import load_profile


def start(
    profile: str, build_dir: str | Path, data_dir: str | Path | None = None
) -> dict[str, Any]:
    """Load the profile, seed every RNG, size torch's thread pool; returns the profile dict.

    The returned dict gains ``build_dir`` (a Path, created) for the chapter's outputs.
    """
    P = load_profile(profile, data_dir=data_dir or None)
    seed = int(P.get("seed", 0))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(int(P["train"].get("num_threads", 2)))
    pio.renderers.default = "plotly_mimetype"
    P["build_dir"] = Path(build_dir).resolve()
    P["build_dir"].mkdir(parents=True, exist_ok=True)
    return P
