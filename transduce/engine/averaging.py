"""Kept weights for averaging: ``checkpoints/step_NNNNNNNNN.safetensors`` (weights only,
each with its SHA-256 beside it), pruned to ``train.keep_checkpoints``, and their average
written to ``averaged/model.safetensors`` (``transduce average``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from transduce import digests
from transduce.atomic import atomic_write_bytes, remove_leftovers
from transduce.engine.checkpoint import check_finite, read_weights, weights_bytes
from transduce.engine.rundir import refuse_linked_folder
from transduce.errors import DataError


def step_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir, "checkpoints", f"step_{step:09d}.safetensors")


# The kept weights' names, exactly as the trainer writes them: anything else in the folder
# (a user's step_1.safetensors, a backup) is neither pruned nor averaged
KEPT = re.compile(r"step_(\d{9,})\.safetensors")


def step_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The kept validation checkpoints, oldest first (regular files of the trainer's names;
    a link is not ours)."""
    folder = Path(run_dir, "checkpoints")
    found = [p for p in folder.glob("step_*.safetensors") if KEPT.fullmatch(p.name)]
    mine = [p for p in found if p.is_file() and not p.is_symlink()]
    return sorted(mine, key=lambda p: int(KEPT.fullmatch(p.name)[1]))


def prune_steps(run_dir: str | os.PathLike, keep: int) -> None:
    for old in step_checkpoints(run_dir)[:-keep]:
        digests.forget(old)  # the sidecar first: a kill leaves no digest without weights
        old.unlink(missing_ok=True)


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the weights in ``paths`` (Vaswani et al. 2017 average the last
    checkpoints of a run); computed in float64, returned in each tensor's own dtype."""
    if not paths:
        raise ValueError("no checkpoints to average (set train.keep_checkpoints)")
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        state = read_weights(path)
        check_finite(state, path)  # one diverged checkpoint would make the average NaN
        for name, tensor in state.items():
            if name in total and total[name].shape != tensor.shape:
                raise DataError(
                    path,
                    None,
                    f"{name} has shape {tuple(tensor.shape)}, not {tuple(total[name].shape)}",
                )
            total[name] = total.get(name, 0) + tensor.double()
            dtypes.setdefault(name, tensor.dtype)
    return {name: (t / len(paths)).to(dtypes[name]) for name, t in total.items()}


def write_average(run_dir: str | os.PathLike, last: int) -> Path:
    """Average the last ``last`` kept checkpoints into ``averaged/model.safetensors``."""
    paths = step_checkpoints(run_dir)[-last:]
    if not paths:
        raise DataError(
            run_dir,
            None,
            "no kept checkpoints to average (checkpoints/step_*"
            ".safetensors; train with train.keep_checkpoints > 0)",
        )
    refuse_linked_folder(Path(run_dir), "averaged")  # written in the run, never through it
    state = average_checkpoints(paths)
    out = Path(run_dir, "averaged", "model.safetensors")
    if out.is_symlink():  # written in the run, never through a link (to a kept checkpoint)
        out.unlink()
    meta = {"averaged": ",".join(p.name for p in paths)}
    for name in (out, digests.sidecar(out)):  # of an average killed while writing
        remove_leftovers(name)
    digests.forget(out)
    atomic_write_bytes(out, weights_bytes({k: v.contiguous() for k, v in state.items()}, meta))
    digests.record(out)
    return out
