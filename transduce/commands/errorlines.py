"""The one line the CLI prints for an error the system raised (a missing package, a full
disk, a folder where a file should be), instead of a traceback or Python's own wording."""

from __future__ import annotations

import os

from transduce.errors import missing_extra


def environment_problem(err: BaseException) -> str | None:
    """One line for a package an extra installs (errors.EXTRA_OF: torch without `train`)
    or a full / read-only disk, else None."""
    import errno

    if isinstance(err, ModuleNotFoundError):
        return missing_extra(err)
    if isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and "allocat" in str(err) and "memory" in str(err)
    ):
        return "not enough memory for this model or batch (a size in the config too large?)"
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT):
        from transduce.atomic import write_problem

        return str(write_problem(_target(err.filename or "output"), err))
    if isinstance(err, OSError) and err.errno == errno.ENOTDIR:  # --out under a file
        return f"{err.filename}: cannot make this folder: a file is in its path"
    if isinstance(err, OSError) and err.errno in (errno.EACCES, errno.EPERM, errno.EISDIR):
        # a folder that refuses us (/sys, read-only)
        return f"{_target(err.filename2 or err.filename or 'output')}: {err.strerror}"
    return None


def said(err: Exception) -> str:
    """The error's line; the system's own (``[Errno 17] File exists: 'in.txt'``, from
    making a folder under a file) as the path and what is wrong."""
    if isinstance(err, FileExistsError) and err.errno is not None and err.filename:
        return f"{err.filename}: exists and is not a folder (a folder was to be made there)"
    if isinstance(err, FileNotFoundError) and err.errno is not None and err.filename:
        return f"{err.filename}: {err.strerror or 'not found'}"
    return str(err)


def _target(where: str | os.PathLike) -> str:
    """The file a write was for: the target, not our temporary sibling of it."""
    from transduce.atomic import TMP_NAME

    where = os.fspath(where)
    ours = TMP_NAME.fullmatch(os.path.basename(where))
    return os.path.join(os.path.dirname(where), ours["name"]) if ours else where
