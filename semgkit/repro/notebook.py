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

from semgkit.repro.profiles import Profile, load_profile
from semgkit.repro.results import show_tables_tidily


def start(profile: str, build_dir: str | Path, data_dir: str | Path | None = None) -> Profile:
    """Load the profile, seed every RNG, size torch's thread pool; returns the profile.

    Its ``build_dir`` (absolute, created) is where the chapter writes its outputs.
    """
    P = load_profile(profile, data_dir=data_dir or None, build_dir=Path(build_dir).resolve())
    random.seed(P.seed)
    np.random.seed(P.seed)
    torch.manual_seed(P.seed)
    if P.train.num_threads:  # 0: torch's default, as in TrainConfig
        torch.set_num_threads(P.train.num_threads)
    pio.renderers.default = "plotly_mimetype"
    show_tables_tidily()
    P.build_dir.mkdir(parents=True, exist_ok=True)
    return P


def show_in(out: Any, obj: Any) -> None:
    """Make the ipywidgets ``Output`` ``out`` show ``obj`` (a figure, a table) alone.

    Sets the widget's outputs from the kernel rather than capturing with ``with out:``:
    under papermill a capture makes nbclient's stand-in Output widget send comm messages
    on the shell channel while it waits there for the cell's reply, which can leave the
    build waiting forever (jupyter/nbclient#312). The MIME bundle is asked for directly
    because plotly figures display themselves instead of returning one to IPython."""
    from IPython.core.formatters import format_display_data

    if hasattr(obj, "_repr_mimebundle_"):
        bundle = obj._repr_mimebundle_()
    else:
        bundle = format_display_data(obj)
    data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
    out.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)
