"""Checkpoints that cannot run code: the safe loader, and the one way to convert an old one.

Checkpoints and teachers are what people download and share, and a pickle can run any
code while it loads. Every checkpoint semgkit reads goes through :func:`load_checkpoint`
(``torch.load(weights_only=True)``: tensors, numbers, strings and plain containers only);
one that holds anything else is refused with the command that rewrites it in plain form,
``semgkit convert-checkpoint``, to be run only on a file one trusts.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from semgkit import models
from semgkit.atomic import atomic_write

WEIGHT_KEYS = ("model", "preset", "model_config", "charset")  # every checkpoint
TRAINING_KEYS = ("optimizer", "scheduler", "rng", "step", "best_cer")  # last.pt besides


class UnsafeCheckpoint(ValueError):
    """A checkpoint holding objects that unpickling would construct by running code."""


def load_checkpoint(path: Path, needs: tuple[str, ...] = WEIGHT_KEYS) -> dict[str, Any]:
    """A checkpoint's contents, with the keys ``needs`` names; errors name the file.

    Unpickled with ``weights_only=True``: only tensors, numbers, strings and plain
    containers are built, so a crafted file cannot run code (checkpoints and teachers are
    what people download and share). A file holding anything else is refused with the
    command that converts one the user trusts (:mod:`semgkit.convert`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "GLOBAL" not in str(err):  # not a forbidden object: bytes that are no pickle
            raise _damaged(path, "not a PyTorch checkpoint") from err
        raise UnsafeCheckpoint(
            f"{path}: refused: it holds objects other than tensors, numbers and strings, "
            "and loading those can run code; if you trust where it came from, convert it "
            f"once with `semgkit convert-checkpoint {path}`"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, ImportError, AttributeError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise _damaged(path, str(err).splitlines()[0]) from err
    missing = [k for k in needs if k not in state] if isinstance(state, dict) else list(needs)
    if missing:
        what = f"a {type(state).__name__}" if not isinstance(state, dict) else "a dict"
        raise ValueError(f"{path}: not a semgkit checkpoint ({what} without {', '.join(missing)})")
    return state


def _damaged(path: Path, reason: str) -> ValueError:
    other = {"last.pt": "best.pt", "best.pt": "last.pt"}.get(path.name)
    hint = f" or copy {other} over it" if other and (path.parent / other).is_file() else ""
    return ValueError(
        f"{path}: damaged or truncated checkpoint ({reason}); delete it{hint}, then rerun"
    )


def plain(obj: Any, where: str = "checkpoint") -> Any:
    """``obj`` rebuilt from tensors, numbers, strings, None and plain containers only:
    numpy values become numbers and tensors, model configs and other dataclasses dicts,
    paths strings. Anything else is an error naming where it sits."""
    if isinstance(obj, np.generic):  # before float: numpy's float64 is one
        return obj.item()
    if obj is None or isinstance(obj, torch.Tensor | torch.Size | str | int | float):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, Mapping):
        kind = OrderedDict if isinstance(obj, OrderedDict) else dict  # a state_dict's
        return kind({k: plain(v, f"{where}[{k!r}]") for k, v in obj.items()})
    if isinstance(obj, list | tuple):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, models.ModelConfig | models.TDSConfig):
        return models.config_dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj), where)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return plain(obj.value, where)
    raise ValueError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which has no plain form"
    )


def convert(path: Path, out: Path | None = None) -> bool:
    """Rewrite the trusted checkpoint ``path`` (into ``out``, default in place, atomically)
    so it loads with ``weights_only=True``; returns False when it already did (no write).

    This unpickles ``path`` in full, which runs whatever code it holds: only for a file
    whose origin one trusts, never on a checkpoint :func:`load_checkpoint` refused for an
    unknown reason."""
    out = path if out is None else out
    try:
        load_checkpoint(path)
        if out == path:
            return False
    except UnsafeCheckpoint:
        pass
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 (whatever the unpickled code raised)
        raise ValueError(f"{path}: cannot be read ({str(err).splitlines()[0]})") from err
    try:
        clean = plain(state)
    except ValueError as err:
        raise ValueError(f"{path}: cannot be converted: {err}") from None
    buffer = io.BytesIO()
    torch.save(clean, buffer)
    buffer.seek(0)
    check = torch.load(buffer, map_location="cpu", weights_only=True)
    missing = [k for k in WEIGHT_KEYS if k not in check] if isinstance(check, dict) else WEIGHT_KEYS
    if missing:
        raise ValueError(f"{path}: not a semgkit checkpoint (no {', '.join(missing)})")
    atomic_write(out, buffer.getvalue())
    return True


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert-checkpoint",
        help="rewrite a checkpoint you trust so it loads without running code",
        description="Checkpoints holding objects other than tensors, numbers and strings are "
        "refused, since loading them can run code. This loads PATH in full (run it only on a "
        "file whose origin you trust) and writes it back in plain form.",
    )
    p.add_argument("path", type=Path, help="the checkpoint (a run's best.pt or last.pt)")
    p.add_argument("--out", type=Path, default=None, help="write here (default: in place)")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    if not args.path.is_file():
        raise FileNotFoundError(f"{args.path}: no such checkpoint")
    done = convert(args.path, args.out)
    target = args.out or args.path
    print(f"{target}: converted; it loads safely now" if done else f"{target}: already safe")
    return 0
