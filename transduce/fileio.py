"""Atomic file writes without torch: the runtime's outputs (``evaluate --output``, forecast
files) and the checkpoints (:mod:`transduce.checkpoint`) share them.

A file is written under a temporary name beside its target, fsynced, then renamed over it,
so a reader sees the old file or the new one, never half of one. Files get the user's umask
(no ``mkstemp``, whose files are 0600).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def tmp_name(path: Path) -> Path:
    """A hidden name beside ``path`` that no other process picks."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes) -> None:
    """Create ``path`` (mode 0666 & ~umask), write ``data`` and fsync it."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(
    path: str | os.PathLike, data: bytes, before: Callable[[str], None] | None = None
) -> None:
    """Write to a temporary name beside ``path``, fsync, rename over ``path``. ``before``
    is called with a short name first (the checkpoint tests' fault injection)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    if before is not None:
        before(f"write {path.name}")
    try:
        write_new(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
