"""Knowledge distillation: a small student learns from a large teacher's per-frame outputs.

The student's objective is ``(1 - alpha) * CTC + alpha * KD``, where KD is the KL divergence
from the teacher's temperature-softened per-frame distribution to the student's (Hinton et
al., 2015), scaled by ``T**2`` so its gradients keep their size as ``T`` grows. There is no
second training loop: :func:`semgkit.train.fit` trains the student with
:class:`DistillObjective` whenever ``TrainConfig.teacher`` names a run directory, so a
distillation run checkpoints and resumes exactly like any other run (and ``semgkit
distill`` is a subcommand of :mod:`semgkit.train_cli`). The losses themselves live in
:mod:`semgkit.losses`; this module loads the teacher through :mod:`semgkit.runs` and never
imports the training loop.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from semgkit.atomic import atomic_path
from semgkit.losses import ctc_loss, frame_mask, kd_loss, masked_l1
from semgkit.pose_train import at_frames, is_pose
from semgkit.runs import load_run


def check_frame_rates(
    teacher: nn.Module,
    student: nn.Module,
    teacher_name: str,
    student_name: str,
    input_lengths: Tensor,
) -> None:
    """Raise unless teacher and student emit the same number of frames for these inputs.

    Per-frame distillation pairs frame i of the teacher with frame i of the student, which
    only means something when both hop over the input at the same rate.
    """
    t_hop, s_hop = getattr(teacher, "hop", None), getattr(student, "hop", None)
    t_len = teacher.output_lengths(input_lengths.cpu())
    s_len = student.output_lengths(input_lengths.cpu())
    if t_hop != s_hop or not torch.equal(t_len, s_len):
        raise ValueError(
            f"distillation needs teacher and student at the same frame rate: teacher preset "
            f"{teacher_name!r} has hop {t_hop} ({t_len.tolist()} frames), student preset "
            f"{student_name!r} has hop {s_hop} ({s_len.tolist()} frames) for inputs of "
            f"{input_lengths.tolist()} samples"
        )


class TeacherCache:
    """The teacher's per-frame log-probabilities on disk, one file per input window.

    Files are named by a hash of the window's samples and length, inside a folder named by
    a hash of the teacher's weights, so a different teacher, corpus, window length or
    augmentation can never read a stale entry: a changed input is simply a miss. Hits need
    the same inputs again, which is what a deterministic data order gives: every run with
    the same seed and data settings (a temperature or alpha sweep) draws the same windows,
    so only the first run pays for the teacher. Stored as float16 (log-probabilities to
    about 3 significant digits) to halve the disk footprint.
    """

    def __init__(self, root: Path, teacher: nn.Module) -> None:
        h = hashlib.sha256()
        for name, tensor in sorted(teacher.state_dict().items()):
            h.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
        self.dir = Path(root) / h.hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = 0

    @staticmethod
    def window_key(emg: Tensor, length: int) -> str:
        data = emg[:length].detach().cpu().contiguous().numpy().tobytes()
        return hashlib.sha1(data + str(length).encode()).hexdigest()

    def load(self, key: str) -> Tensor | None:
        path = self.dir / f"{key}.npy"
        if not path.is_file():
            self.misses += 1
            return None
        self.hits += 1
        return torch.from_numpy(np.load(path).astype(np.float32))

    def save(self, key: str, log_probs: Tensor) -> None:
        with atomic_path(self.dir / f"{key}.npy", suffix=".npy") as tmp:
            np.save(tmp, log_probs.detach().cpu().numpy().astype(np.float16))

    @property
    def hit_rate(self) -> float:
        return self.hits / max(1, self.hits + self.misses)


def load_teacher(run_dir: str | Path) -> tuple[nn.Module, str]:
    """A trained run as a frozen teacher (eval mode, no gradients) and its preset name."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"teacher {run_dir}: no such run directory")
    model, config = load_run(run_dir)
    return model.eval().requires_grad_(False), str(config.preset)


class DistillObjective:
    """``(1 - alpha) * CTC + alpha * kd_loss``: the student objective that ``fit`` uses.

    For a pose student (the regression head) the teacher's angles are the soft targets:
    ``(1 - alpha) * L1(student, true angles) + alpha * L1(student, teacher angles)``, each
    emg2pose's masked L1 (the first over frames without IK failures, the second over every
    real frame); the temperature plays no part.

    The teacher (``config.teacher``, a run directory) is loaded once, frozen and kept in
    eval mode; it is not a submodule of the student, so the optimizer, checkpoints and
    ``model.train()`` never touch it. Holding no state of its own besides the on-disk
    cache, the objective makes a distillation run checkpoint and resume like any other.
    """

    def __init__(self, config: Any) -> None:
        if not config.teacher:
            raise ValueError("DistillObjective: config.teacher (a teacher run directory) is empty")
        if not 0.0 <= float(config.alpha) <= 1.0:
            raise ValueError(f"distillation: alpha must be in [0, 1], got {config.alpha}")
        if not float(config.temperature) > 0:
            raise ValueError(f"distillation: temperature must be > 0, got {config.temperature}")
        self.alpha = float(config.alpha)
        self.temperature = float(config.temperature)
        self.student_name = str(config.preset)
        self.teacher, self.teacher_name = load_teacher(config.teacher)
        self.pose = is_pose(getattr(self.teacher, "config", None))  # fit checks the student's
        self.cache = None
        if config.teacher_cache:
            root = (
                Path(config.teacher) / "teacher_cache"
                if config.teacher_cache is True
                else Path(config.teacher_cache)
            )
            self.cache = TeacherCache(root, self.teacher)
        self._checked = False

    @torch.no_grad()
    def teacher_log_probs(self, batch: dict[str, Tensor], frames: int) -> Tensor:
        """The teacher's (B, frames, C) log-probabilities, from the cache when there.

        Frames past each window's length (padding) are zeros: kd_loss masks them out.
        """
        emg, lengths = batch["emg"], batch["input_lengths"]
        self.teacher.to(emg.device).eval()
        if self.cache is None:
            return self.teacher(emg, lengths)
        keys = [TeacherCache.window_key(e, int(n)) for e, n in zip(emg, lengths, strict=True)]
        rows = [self.cache.load(k) for k in keys]
        missing = [i for i, r in enumerate(rows) if r is None]
        if missing:
            fresh = self.teacher(emg[missing], lengths[missing]).float()
            real = self.teacher.output_lengths(lengths[missing].cpu())
            for j, i in enumerate(missing):
                rows[i] = fresh[j, : int(real[j])].cpu()
                self.cache.save(keys[i], rows[i])
        out = torch.zeros(len(rows), frames, rows[0].shape[-1])
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
        return out.to(emg.device)

    def __call__(self, model: nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        lengths = batch["input_lengths"]
        if not self._checked:
            check_frame_rates(self.teacher, model, self.teacher_name, self.student_name, lengths)
            self._checked = True
        log_probs = model(batch["emg"], lengths)
        frames = model.output_lengths(lengths).to(log_probs.device)
        teacher = self.teacher_log_probs(batch, log_probs.shape[1])
        if teacher.shape != log_probs.shape:
            raise ValueError(
                f"teacher {self.teacher_name!r} output {tuple(teacher.shape)} does not match "
                f"student {self.student_name!r} output {tuple(log_probs.shape)}"
            )
        real = frame_mask(frames, log_probs.shape[1])
        if self.pose:
            target, mask = at_frames(batch, log_probs.shape[1], model.hop)
            task, kd = masked_l1(log_probs, target, mask), masked_l1(log_probs, teacher, real)
        else:
            task = ctc_loss(log_probs, frames, batch)
            kd = kd_loss(log_probs, teacher, self.temperature, real)
        loss = (1.0 - self.alpha) * task + self.alpha * kd
        stats = {"l1" if self.pose else "ctc": float(task.detach()), "kd": float(kd.detach())}
        if self.cache is not None:
            stats["teacher_cache_hit_rate"] = self.cache.hit_rate
        return loss, stats
