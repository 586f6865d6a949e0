"""A lock for work that only one process should do at a time, the others waiting for it.

:func:`exclusive` holds ``flock`` on a lock file for the duration of a ``with`` block; a
second process waits (saying whose lock it waits for), then goes on, typically to find the
work done. The kernel drops the lock of a process killed outright, so nothing is ever
stale. (The run directory's lock, :func:`transduce.engine.rundir.locked`, built of the same
pieces -- :func:`open_lock`, :func:`holder`, :func:`still_at`, :func:`claim` -- refuses a
second trainer instead of waiting.)
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from transduce.errors import DataError

try:
    import fcntl
except ImportError:  # Windows: no lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("transduce")


@contextlib.contextmanager
def exclusive(path: Path, doing: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (a file this creates and removes) for the block.
    Held elsewhere: prints ``{doing}: waiting for pid N`` to stderr and waits. The file is
    removed while still held; a waiter whose lock is then on a removed file sees that it
    is no longer the path's and opens the path again. A link at ``path`` is refused, never
    followed. A file system without locks (some network mounts): a warning, no lock."""
    if fcntl is None:
        yield
        return
    while True:
        fd = open_lock(path)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"{doing}: waiting for pid {holder(fd)}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as err:
                log.warning("%s: not locked (%s)", path, err.strerror)
            if not still_at(fd, path):  # the holder we waited for removed it: open it again
                continue
            claim(fd)
            try:
                yield
            finally:
                path.unlink(missing_ok=True)  # ours, still locked
            return
        finally:
            os.close(fd)


def open_lock(path: Path) -> int:
    """A descriptor of the lock file ``path`` (made if missing), read-write. A link there
    is refused, never followed; a folder, a FIFO or a device at that name is one line; a
    folder that refuses the file is named."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:  # named by its folder: the lock is ours, the folder theirs
        if err.errno == errno.ELOOP:
            raise DataError(path, None, "is a link: refusing to lock through it") from None
        if err.errno == errno.EISDIR:
            raise DataError(path, None, "is a folder, not a lock file: remove it") from None
        raise DataError(path.parent, None, f"cannot write here: {err.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device at the lock's name
        os.close(fd)
        raise DataError(path, None, "is not a regular file (a lock file goes here)")
    return fd


def holder(fd: int) -> str:
    """The pid the lock's holder wrote into it ("?" before it did)."""
    return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"


def still_at(fd: int, path: Path) -> bool:
    """Whether the locked file is still the one at ``path`` (not removed or replaced by
    the holder before us while we waited)."""
    try:
        return os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
    except FileNotFoundError:
        return False


def claim(fd: int) -> None:
    """Write this process's pid into the lock it holds, for the next one to name."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
