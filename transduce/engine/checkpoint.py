"""Checkpoints (ARCHITECTURE §4): one directory written whole, then renamed into place.

A checkpoint is ``ckpt/step_NNNNNNNNN/`` holding ``model.safetensors``, ``trainer_state.pt``
and ``meta.json`` (the step, and each file's size and SHA-256). It is written into a hidden
temporary directory, every file and the directory fsynced, then renamed. ``last`` and
``best`` are symlinks replaced atomically (a new link under a temporary name, then
``rename``); ``model.safetensors`` at the top of the run is a fixed link to
``best/model.safetensors``. A crash at any point leaves either the old pointers or the new
ones, never a mix; what it leaves half-written is removed by :func:`clean` at the next start.

Weights go to safetensors (never pickle); the trainer state goes through ``torch.save`` but
holds only tensors and plain containers, and is read back with ``weights_only=True``. Files
are created with the user's umask (no ``mkstemp``, whose files are 0600). Every reader here
answers a damaged file with one :class:`~transduce.errors.DataError` naming it.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from transduce import digests
from transduce.atomic import (  # noqa: F401 (atomic_write_text: re-exported)
    atomic_write_bytes,
    atomic_write_text,
    fsync_dir,
    step_fault,
    tmp_name,
)
from transduce.errors import DataError

CKPT = "ckpt"  # the checkpoint directories of a run
FILES = ("model.safetensors", "trainer_state.pt")


def _write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0666 & ~umask, as any file the user makes: safetensors'
    own ``save_file`` makes 0600 files), write ``data`` and fsync it."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _weights_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with tied parameters stored once, on the CPU."""
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        key = tensor.data_ptr()
        if key in seen and tensor.numel() > 0:
            continue  # tied weight: loaded back through the module that owns it
        seen.add(key)
        state[name] = tensor.detach().cpu().contiguous()
    return state


def weights_bytes(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """A safetensors file of ``state``, the same bytes for the same weights: safetensors
    writes its header's keys (the metadata's among them) in a hash map's order, which
    changes from process to process; the header is written again with its keys sorted
    (offsets are relative to the data after it, so only its length may change)."""
    data = save(state, metadata=metadata)
    size = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + size]), separators=(",", ":"), sort_keys=True)
    header += " " * (-len(header) % 8)  # the format aligns the tensor data to 8 bytes
    return len(header).to_bytes(8, "little") + header.encode() + data[8 + size :]


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str]) -> None:
    """Weights as safetensors, written atomically, with their SHA-256 sidecar; tied
    parameters are stored once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    digests.forget(path)
    step_fault(f"write {path.name}")
    try:
        _write_new(tmp, weights_bytes(_weights_state(model), metadata))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    digests.record(path)


def recorded_files(meta_path: Path) -> dict[str, dict[str, Any]]:
    """The ``files`` entry of a checkpoint's meta.json: ``{name: {bytes, sha256}}``; any
    other shape is one DataError naming meta.json."""
    try:
        meta = json.loads(meta_path.read_bytes()[: 1 << 20].decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise DataError(meta_path, None, "damaged checkpoint description (not JSON)") from None
    files = meta.get("files") if isinstance(meta, dict) else None
    good = isinstance(files, dict) and all(
        isinstance(v, dict) and isinstance(v.get("bytes"), int) and isinstance(v.get("sha256"), str)
        for v in files.values()
    )
    if not good:
        raise DataError(
            meta_path,
            None,
            "damaged checkpoint description (files: expected "
            '{"NAME": {"bytes": INT, "sha256": HEX}})',
        )
    return files


def verify_file(path: str | os.PathLike) -> None:
    """Check ``path`` against the size and SHA-256 that the meta.json beside it (links
    followed) records, else against its sidecar (:mod:`transduce.digests`): a bit flipped
    since the file was written is one DataError naming the file. Hashing costs a read of
    the file, small next to building tensors from it."""
    real = Path(os.path.realpath(path))
    meta_path = real.parent / "meta.json"
    if not real.is_file():
        return  # the loader names a missing file
    want = recorded_files(meta_path).get(real.name) if meta_path.is_file() else None
    if want is None:  # weights outside a checkpoint unit: their sidecar NAME.sha256
        digests.check(real)
        return
    if real.stat().st_size != want["bytes"] or _digest(real) != want["sha256"]:
        raise DataError(
            path,
            None,
            f"does not match the SHA-256 recorded in {meta_path}: truncated or "
            "corrupted, or changed after it was written; refusing to load it",
        )


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, verified against its checkpoint's meta.json; a
    missing or damaged file is one DataError."""
    verify_file(path)
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except Exception as err:  # safetensors raises its own error types (header, length)
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            path,
            None,
            f"not a readable safetensors file ({problem}); the file is truncated or corrupted",
        ) from None


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Refuse weights holding NaN or infinity (a run that diverged): decoding them raised
    deep in beam search and sampling, and greedy output was empty with NaN scores."""
    bad = [
        n for n, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]
    if bad:
        raise DataError(
            path,
            None,
            f"{len(bad)} weight tensor(s) hold NaN or infinite values ({bad[0]}): the run "
            "diverged before these weights; use an earlier checkpoint or retrain",
        )


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    state = read_weights(path)
    check_finite(state, path)
    own = model.state_dict()
    wrong = [
        f"{name} {tuple(t.shape)} vs {tuple(own[name].shape)}"
        for name, t in state.items()
        if name in own and own[name].shape != t.shape
    ]
    if wrong:
        raise DataError(
            path,
            None,
            f"weights do not fit the model of config.yaml (shapes "
            f"{', '.join(wrong[:3])}): was the config changed after training?",
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {n for n in missing if _is_tied(model, n)}
    missing = [n for n in missing if n not in tied]
    if missing or unexpected:
        raise DataError(
            path,
            None,
            f"weights do not fit the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]} (was the config changed after training?)",
        )


def _is_tied(model: nn.Module, name: str) -> bool:
    ptr = model.state_dict()[name].data_ptr()
    return sum(t.data_ptr() == ptr for t in model.state_dict().values()) > 1


def weights_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except Exception as err:
        raise DataError(path, None, f"not a readable safetensors file ({err})") from None


def save_trainer_state(state: dict[str, Any], path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_trainer_state(path: str | os.PathLike) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except Exception as err:  # pickle, zip and torch errors alike: the file is damaged
        kind = type(err).__name__
        raise DataError(
            path, None, f"not a readable trainer state ({kind}); the file is truncated or corrupted"
        ) from None
    if not isinstance(state, dict) or "counters" not in state:
        raise DataError(path, None, "not a trainer state (no step counters)")
    return state


# ---------------------------------------------------------------------- checkpoint dirs


def _digest(path: Path) -> str:
    return digests.digest(path)


def point(link: Path, target: str) -> None:
    """Replace symlink ``link`` by one to ``target`` atomically."""
    tmp = tmp_name(link)
    os.symlink(target, tmp)
    step_fault(f"switch {link.name}")
    os.replace(tmp, link)
    fsync_dir(link.parent)


def step_dir_name(step: int) -> str:
    return f"step_{step:09d}"


def write_checkpoint(
    run_dir: str | os.PathLike,
    model: nn.Module,
    state: dict[str, Any],
    meta: dict[str, str],
    best: bool,
) -> Path:
    """Write ``ckpt/step_N`` whole, then point ``last`` (and, if ``best``, ``best``) at it
    and delete the checkpoints no pointer holds. ``meta`` needs ``step``."""
    run_dir = Path(run_dir)
    root = run_dir / CKPT
    root.mkdir(parents=True, exist_ok=True)
    name = step_dir_name(int(meta["step"]))
    tmp = root / f".tmp-{name}.{os.getpid()}.{secrets.token_hex(4)}"
    tmp.mkdir()
    step_fault("weights")
    _write_new(tmp / FILES[0], weights_bytes(_weights_state(model), meta))
    step_fault("trainer state")
    with open(tmp / FILES[1], "xb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    files = {n: {"bytes": (tmp / n).stat().st_size, "sha256": _digest(tmp / n)} for n in FILES}
    step_fault("meta")
    with open(tmp / "meta.json", "x", encoding="utf-8") as f:
        json.dump({**meta, "files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(tmp)
    final = root / name
    if final.exists():  # a stale copy of this step from before a crash: set it aside
        step_fault("set aside")
        os.replace(final, root / f".old-{name}.{secrets.token_hex(4)}")
    step_fault("rename")
    os.replace(tmp, final)
    fsync_dir(root)
    point(run_dir / "last", f"{CKPT}/{name}")
    if best:
        point(run_dir / "best", f"{CKPT}/{name}")
    ensure_best_link(run_dir)
    prune(run_dir)
    return final


def ensure_best_link(run_dir: Path) -> None:
    """``model.safetensors`` -> ``best/model.safetensors`` (created once per run)."""
    link = run_dir / "model.safetensors"
    if (run_dir / "best").is_symlink() and not link.is_symlink():
        point(link, "best/model.safetensors")


# The names this module gives entries of ``ckpt/``: prune deletes nothing else.
STEP_NAME = re.compile(r"step_\d{9}")
_LEFTOVER_NAME = re.compile(r"\.tmp-step_\d{9}\.\d+\.[0-9a-f]{8}|\.old-step_\d{9}\.[0-9a-f]{8}")


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def pointed(run_dir: Path, pointer: str) -> Path | None:
    """The checkpoint directory of this run that ``last`` or ``best`` points at, however
    the link is written (relative, absolute, re-pointed by hand): ``None`` when it is no
    link, or points anywhere but a ``step_N`` folder of this run's own ``ckpt/``."""
    link = run_dir / pointer
    root = run_dir / CKPT
    if not link.is_symlink() or root.is_symlink():
        return None
    real = os.path.realpath(link)
    if os.path.dirname(real) != os.path.realpath(root) or not STEP_NAME.fullmatch(
        os.path.basename(real)
    ):
        return None
    return root / os.path.basename(real)


def prune(run_dir: Path) -> list[Path]:
    """Delete the checkpoint directories of this run that neither ``last`` nor ``best``
    points at, and the leftovers of interrupted writes; returns what was removed.

    Only entries named as this module names them (``step_N``, ``.tmp-step_N.PID.HEX``,
    ``.old-step_N.HEX``) that are real folders inside the run are touched. A ``ckpt`` that
    is a symlink is never followed, and while a pointer is a link to anything but a
    checkpoint of this run (a user re-pointed it), no checkpoint is pruned."""
    root = run_dir / CKPT
    if root.is_symlink() or not root.is_dir():
        return []
    real_root = os.path.realpath(root)
    if not _inside(real_root, os.path.realpath(run_dir)):
        return []
    keep: set[str] = set()
    unsure = False
    for pointer in ("last", "best"):
        target = pointed(run_dir, pointer)
        if target is not None:
            keep.add(target.name)
        elif (run_dir / pointer).is_symlink() or (run_dir / pointer).exists():
            unsure = True
    removed = []
    for entry in sorted(root.iterdir()):
        ours_step = STEP_NAME.fullmatch(entry.name) and not unsure and entry.name not in keep
        if not (ours_step or _LEFTOVER_NAME.fullmatch(entry.name)):
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue  # never made by us: a user's link or file
        if os.path.dirname(os.path.realpath(entry)) != real_root:
            continue
        step_fault("prune")
        shutil.rmtree(entry)
        removed.append(entry)
    return removed


def verify_unit(step_dir: Path) -> dict[str, Any]:
    """The meta.json of checkpoint ``step_dir``, once its weights and trainer state are
    there with the size and digest it records (a DataError naming the file otherwise)."""
    meta_path = step_dir / "meta.json"
    files = recorded_files(meta_path)
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if any(n not in files for n in FILES):
        raise DataError(meta_path, None, f"damaged checkpoint description (no {FILES})")
    for name in FILES:
        path, want = step_dir / name, files[name]
        if not path.exists():
            raise DataError(path, None, "missing from the checkpoint")
        if path.stat().st_size != want["bytes"] or _digest(path) != want["sha256"]:
            raise DataError(
                path,
                None,
                "does not match the checkpoint's meta.json "
                "(truncated or changed after it was written)",
            )
    return meta


def read_checkpoint(run_dir: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """The ``last`` checkpoint's directory and trainer state, verified: each file has the
    size and digest meta.json records, and weights, state and meta.json name one step."""
    last = Path(run_dir) / "last"
    meta = verify_unit(last) if (last / "meta.json").exists() else None
    weights_step = weights_metadata(last / FILES[0]).get("step")
    state = load_trainer_state(last / FILES[1])
    state_step = int(state["counters"][0])
    steps = {"weights": weights_step, "trainer state": str(state_step)}
    if meta is not None:
        steps["meta.json"] = str(meta.get("step"))
    if len(set(steps.values())) != 1:
        mix = ", ".join(f"{k} at step {v}" for k, v in steps.items())
        raise DataError(last, None, f"a mix of checkpoints ({mix}); refusing to resume from it")
    return last, state
