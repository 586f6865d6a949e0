"""The model directory (ARCHITECTURE §4) and atomic writes.

Weights go to safetensors (never pickle); the trainer state goes through ``torch.save``
but holds only tensors and plain containers, and is read back with ``weights_only=True``.
Every file is written to a temporary name in the same folder, flushed, then renamed.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Weights as safetensors; tied parameters are stored once."""
    state, seen = {}, {}
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen and tensor.numel() > 0:
            continue  # tied weight: loaded back through the module that owns it
        seen[key] = name
        state[name] = tensor.detach().cpu().contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {n for n in missing if _is_tied(model, n)}
    missing = [n for n in missing if n not in tied]
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]} (was the config changed after training?)"
        )


def _is_tied(model: nn.Module, name: str) -> bool:
    ptr = model.state_dict()[name].data_ptr()
    return sum(t.data_ptr() == ptr for t in model.state_dict().values()) > 1


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def save_trainer_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_trainer_state(path: str | os.PathLike) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------- averaging


def step_path(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir, "checkpoints", f"step_{step:09d}.safetensors")


def step_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The kept validation checkpoints, oldest first."""
    return sorted(Path(run_dir, "checkpoints").glob("step_*.safetensors"))


def prune_steps(run_dir: str | os.PathLike, keep: int) -> None:
    for old in step_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the weights in ``paths`` (Vaswani et al. 2017 average the last
    checkpoints of a run); computed in float64, returned in each tensor's own dtype."""
    if not paths:
        raise ValueError("no checkpoints to average (set train.keep_checkpoints)")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        for name, tensor in load_file(str(path)).items():
            if name in total and total[name].shape != tensor.shape:
                raise ValueError(f"{path}: {name} has shape {tuple(tensor.shape)}, not "
                                 f"{tuple(total[name].shape)}")  # fmt: skip
            total[name] = total.get(name, 0) + tensor.double()
    first = load_file(str(paths[0]))
    return {name: (t / len(paths)).to(first[name].dtype) for name, t in total.items()}


def write_average(run_dir: str | os.PathLike, last: int) -> Path:
    """Average the last ``last`` kept checkpoints into ``averaged/model.safetensors``."""
    paths = step_checkpoints(run_dir)[-last:]
    state = average_checkpoints(paths)
    out = Path(run_dir, "averaged", "model.safetensors")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    meta = {"averaged": ",".join(p.name for p in paths)}
    save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=meta)
    os.replace(tmp, out)
    return out
