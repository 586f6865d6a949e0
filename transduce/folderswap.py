"""Putting a finished folder in place of an older one so that a process killed at any
moment leaves the old folder or the new one at that name, never neither.

Linux swaps two names in one step (``renameat2`` with ``RENAME_EXCHANGE``, local file
systems since 3.15); the old folder then sits under the new one's temporary name, and a
kill before it is removed leaves a leftover that :func:`transduce.atomic.remove_leftovers`
clears. Where the kernel or the file system cannot swap (another OS, some network file
systems), the old folder is first renamed aside under a name of its own
(``.NAME.previous.OWNER.HEX.tmp``), and :func:`restore_previous` puts it back when a kill
came between the two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import shutil
from pathlib import Path

from transduce.atomic import OWNER, tmp_name, writer_gone

AT_FDCWD = -100
RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


@functools.cache
def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28 / not Linux
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False where this system or file system
    cannot (nothing was changed then)."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(b))


def _previous_pattern(target: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(target.name)}\.previous\.{OWNER}\.[0-9a-f]{{8}}\.tmp")


def swap_in(new: Path, target: Path) -> None:
    """Put the folder ``new`` (a sibling of ``target``) at ``target``, removing what was
    there; a kill at any moment leaves the old folder or the new one at ``target``."""
    if not os.path.lexists(target):
        os.replace(new, target)
        return
    if exchange(new, target):
        shutil.rmtree(new)  # now the old folder
        return
    aside = tmp_name(target.with_name(f"{target.name}.previous"))  # see _previous_pattern
    os.replace(target, aside)
    os.replace(new, target)
    shutil.rmtree(aside)


def restore_previous(target: Path) -> bool:
    """After a writer killed between :func:`swap_in`'s two renames: put its old folder
    back at ``target`` (only when nothing is there, only a dead writer's); then remove the
    other dead writers' set-aside folders. Whether one was put back."""
    pattern, restored = _previous_pattern(target), False
    with contextlib.suppress(OSError):
        for entry in sorted(
            target.parent.iterdir(), key=lambda p: p.lstat().st_mtime, reverse=True
        ):
            match = pattern.fullmatch(entry.name)
            if not match or entry.is_symlink() or not entry.is_dir():
                continue
            if not writer_gone(int(match["pid"]), match["space"]):
                continue
            if not restored and not os.path.lexists(target):
                os.replace(entry, target)
                restored = True
            else:
                shutil.rmtree(entry, ignore_errors=True)
    return restored
