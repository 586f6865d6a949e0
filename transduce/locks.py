"""A lock for work that only one process should do at a time, the others waiting for it.

:func:`exclusive` holds ``flock`` on a lock file for the duration of a ``with`` block; a
second process waits (saying whose lock it waits for), then goes on, typically to find the
work done. The kernel drops the lock of a process killed outright, so nothing is ever
stale. (The run directory's lock, :func:`transduce.engine.rundir.locked`, refuses a second
trainer instead of waiting.)
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
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
                print(f"{doing}: waiting for pid {holder}", file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as err:
                log.warning("%s: not locked (%s)", path, err.strerror)
            try:
                same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder we waited for removed it: open the path again
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            try:
                yield
            finally:
                path.unlink(missing_ok=True)  # ours, still locked
            return
        finally:
            os.close(fd)
