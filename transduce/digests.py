"""SHA-256 sidecars for weights written outside a checkpoint unit.

A checkpoint unit (``ckpt/step_N/``) records its files' digests in its ``meta.json``. The
other weights transduce writes (``checkpoints/step_N.safetensors`` kept for averaging,
``averaged/model.safetensors``, an estimator's ``model.safetensors``) get a sidecar
``NAME.sha256`` beside them in the format of ``sha256sum`` (``HEX  NAME``), so
``sha256sum -c NAME.sha256`` checks one by hand too. The old sidecar is removed before the
weights are replaced and the new one written after them: a kill in between leaves weights
with no sidecar (loaded with a warning), never weights beside another file's digest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

from transduce.atomic import atomic_write_text
from transduce.errors import DataError

log = logging.getLogger("transduce")
SUFFIX = ".sha256"
_LINE = re.compile(r"([0-9a-f]{64}) [ *](.+)\n?")


def digest(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def forget(path: str | os.PathLike) -> None:
    """Remove ``path``'s sidecar before ``path`` is replaced (a real file only: a link of
    the user's named like one is left alone)."""
    side = sidecar(path)
    if side.is_file() and not side.is_symlink():
        side.unlink()


def record(path: str | os.PathLike) -> None:
    """Write ``path``'s sidecar (atomically) from the bytes now in ``path``."""
    path = Path(path)
    atomic_write_text(sidecar(path), f"{digest(path)}  {path.name}\n")


def check(path: str | os.PathLike) -> bool:
    """Verify ``path`` against its sidecar: ``True`` when it matches, ``False`` when there
    is none (a file written before sidecars, or a kill between the two writes: a warning,
    the file is loaded). A damaged sidecar or another digest is one DataError."""
    side = sidecar(path)
    if not side.is_file():
        log.warning(
            "%s: no checksum recorded (no %s beside it); loading it unverified", path, side.name
        )
        return False
    try:
        text = side.read_bytes()[:4096].decode("ascii")
    except (OSError, UnicodeDecodeError):
        text = ""
    found = _LINE.fullmatch(text)
    if found is None:
        raise DataError(side, None, "damaged checksum file (expected 'SHA256  NAME')")
    if digest(path) != found.group(1):
        raise DataError(
            path,
            None,
            f"does not match the SHA-256 recorded in {side}: truncated or "
            "corrupted, or changed after it was written; refusing to load it",
        )
    return True
