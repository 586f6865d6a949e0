"""The one writer of every file the project writes: a temporary sibling, fsync, rename.

A reader never sees a half-written file and a failure leaves any previous file untouched.
:func:`atomic_output` does the same for streamed outputs (translate ``--output``), and
writes straight through what cannot be replaced by a rename (a FIFO, a terminal,
``/dev/stdout``). :func:`refuse_overwriting_inputs` stops an output that is one of the
command's inputs (same inode, also through links) before anything is opened.
What a write killed outright leaves (its temporary sibling) is removed by the next write
of the same output (:func:`remove_leftovers`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from transduce.errors import DataError

log = logging.getLogger("transduce")


# Fault injection for the tests: called with a short name before every write a run makes
# (tests/test_resume_faults.py and benchmarks/kill_loop.py raise or kill at the k-th call).
fault_hook: Callable[[str], None] | None = None


def step_fault(what: str) -> None:
    if fault_hook is not None:
        fault_hook(what)


def tmp_name(path: Path) -> Path:
    """A hidden sibling of ``path`` no other writer picks: ``.NAME.OWNER.HEX.tmp``
    (:func:`owner`)."""
    return path.with_name(f".{path.name}.{owner()}.{secrets.token_hex(4)}.tmp")


@functools.cache
def pid_space() -> str:
    """8 hex digits naming the space this process's pid is a number in: this boot of this
    host (the kernel's random boot id) and this pid namespace (a container's own). Two
    processes whose tags differ -- on two hosts sharing a network folder, in two
    containers sharing a volume -- cannot tell from a pid whether the other runs."""
    parts = [socket.gethostname()]  # where /proc tells nothing (not Linux)
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))  # the namespace's inode
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]


def owner() -> str:
    """``PID@SPACE``: what the names of temporary files and folders carry, so that what a
    process killed outright left can be told from a live writer's (:func:`remove_dead`)."""
    return f"{os.getpid()}@{pid_space()}"


# The owner in a name, for remove_dead's patterns: groups "pid" and "space"
OWNER = r"(?P<pid>\d+)@(?P<space>[0-9a-f]{8})"

# Any name tmp_name gives (and, without the space, an older version gave): groups "name"
# (the target's), "pid" and "space" (None for the older names)
TMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)(?:@(?P<space>[0-9a-f]{8}))?\.[0-9a-f]{8}\.tmp")


def running(pid: int) -> bool:
    """Whether a process ``pid`` runs (someone else's counts). A number no pid can be
    (0, negative, past 2**31 - 1: a crafted name) counts as running, so its entry stays."""
    if not 0 < pid < 2**31:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def writer_gone(pid: int, space: str | None) -> bool:
    """Whether the writer a temporary name records -- its pid and pid space (None: a name
    from before spaces, taken as this one) -- no longer runs. Another space's writer may
    be at work on its host or in its container: never gone by a pid here."""
    return (space is None or space == pid_space()) and not running(pid)


def remove_dead(
    folder: str | os.PathLike,
    pattern: re.Pattern,
    *,
    folders_only: bool = False,
    mine: bool = False,
) -> list[Path]:
    """The entries of ``folder`` that ``pattern`` matches in full, its :data:`OWNER`
    groups naming the process that made them, while no process of that pid runs: what a
    process killed outright left, recognised by the name its own code gives (never anyone
    else's). Only entries of this pid space (:func:`pid_space`): another host's or
    container's writer may be at work. A link is removed, never followed;
    ``folders_only``: real folders only (no file, no link); ``mine``: owned by this user (a
    shared folder such as the temporary directory). An entry whose process runs (a writer
    at work, or a reused pid) stays."""
    removed = []
    with contextlib.suppress(OSError):  # a folder we cannot list holds nothing of ours
        for entry in Path(folder).iterdir():
            match = pattern.fullmatch(entry.name)
            if not match or (folders_only and (entry.is_symlink() or not entry.is_dir())):
                continue
            with contextlib.suppress(OSError):
                if mine and entry.lstat().st_uid != os.getuid():
                    continue
                if not writer_gone(int(match["pid"]), match["space"]):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    if removed:
        log.info("removed %d leftover(s) of interrupted work in %s", len(removed), folder)
    return removed


def remove_leftovers(path: Path) -> list[Path]:
    """What writes of ``path`` killed outright left beside it (:func:`tmp_name`'s
    ``.NAME.OWNER.HEX.tmp``, a file or a folder), by :func:`remove_dead`."""
    return remove_dead(
        path.parent, re.compile(rf"\.{re.escape(path.name)}\.{OWNER}\.[0-9a-f]{{8}}\.tmp")
    )


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside ``path`` durable (POSIX: fsync the directory)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_problem(path: str | os.PathLike, err: OSError) -> DataError:
    """One line for a failed write: a full disk and a read-only file system by name."""
    reason = {
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "read-only file system",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
    }.get(err.errno or 0, err.strerror or str(err))
    return DataError(path, None, f"cannot write: {reason}")


def _target(path: Path) -> Path:
    """Where the bytes go: through a symlink to the file it names (the link stays)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary sibling of ``path``, fsync, rename over ``path``.
    Files get the user's umask (no ``mkstemp``, whose files are 0600). A symlink at
    ``path`` is replaced, not written through: a file the project owns (a run's
    config.yaml) never overwrites what a link of the user's points at."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)  # of a write of ``path`` killed outright (a table, a JSON)
    tmp = tmp_name(path)
    step_fault(f"write {path.name}")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _is_special(path: Path) -> bool:
    """A FIFO, a terminal or another device: written through, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def write_output(path: str | os.PathLike, data: bytes) -> None:
    """A command's output file (a user's ``--output``) written whole, as
    :func:`atomic_output` writes text: through a FIFO or device (``/dev/stdout``), through
    a symlink to the file it names, else to a temporary sibling renamed into place (a
    failure leaves any previous file as it was); a failure is one line. Its folder is
    made when missing."""
    path = Path(path)
    if _is_special(path):
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as err:
            raise write_problem(path, err) from None
        return
    target = _target(path)
    if target.is_dir():
        raise DataError(path, None, "is a directory, not a file")
    above = next((p for p in target.parents if os.path.lexists(p)), None)
    if above is not None and not above.is_dir():
        raise DataError(path, None, f"cannot write: {above} is a file, not a folder")
    try:
        atomic_write_bytes(target, data)
    except OSError as err:
        raise write_problem(path, err) from None


class _Counted:
    """A text stream that counts the lines written (for the failure message)."""

    def __init__(self, f: IO[str]) -> None:
        self.f, self.lines = f, 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return self.f.write(text)

    def flush(self) -> None:
        self.f.flush()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[_Counted]:
    """A text stream for ``path`` renamed into place only when the block completes; on
    failure the temporary file is removed, any previous ``path`` is left as it was, and
    the error says how many lines were done. Special files are written through."""
    path = Path(path)
    if _is_special(path):
        try:
            f = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as err:
            raise write_problem(path, err) from None
        try:
            with f:  # (its close writes what is buffered: inside)
                yield _Counted(f)
        except OSError as err:  # /dev/full: the path, not the word "output"
            if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
                raise
            raise write_problem(path, err) from None
        return
    target = _target(path)
    if target.is_dir():
        raise DataError(path, None, "is a directory, not a file")
    remove_leftovers(target)
    tmp = tmp_name(target)
    try:
        f = open(tmp, "x", encoding="utf-8")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        raise DataError(path, None, "cannot write: its folder does not exist") from None
    except OSError as err:
        raise write_problem(path, err) from None
    out = _Counted(f)
    try:
        with f:
            yield out
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        left = "left as it was" if target.exists() else "not created"
        note = f"{out.lines} line(s) were done; {path} {left}"
        if isinstance(err, OSError):
            raise DataError(path, None, f"{write_problem(path, err).problem}; {note}") from None
        if isinstance(err, DataError):
            raise DataError(err.path, err.line, f"{err.problem}; {note}") from None
        if isinstance(err, KeyboardInterrupt):  # Ctrl-C, SIGTERM: the CLI's line has the note
            raise type(err)(note) from None
        log.warning("%s: stopped (%s); %s", path, type(err).__name__, note)
        raise


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (same device and inode, links followed)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwriting_inputs(
    output: str | os.PathLike | None, inputs: Iterable[str | os.PathLike | None]
) -> None:
    """Refuse an ``output`` that is one of the ``inputs`` (same inode, links followed), or
    the file the standard input reads (``translate --output F < F``)."""
    if not output or os.fspath(output) == "-":
        return
    if _is_stdin(output):
        raise DataError(
            output,
            None,
            "is the file the standard input reads: the output would destroy it; "
            "write to another file",
        )
    for source in inputs:
        if source and os.fspath(source) != "-" and same_file(output, source):
            raise DataError(
                output,
                None,
                f"is the input {os.fspath(source)}: the output would destroy it; "
                "write to another file",
            )


def _is_stdin(output: str | os.PathLike) -> bool:
    """Whether ``output`` is the regular file the standard input reads (same inode)."""
    try:
        given, seen = os.stat(output), os.fstat(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):  # no such output; no stdin, or closed
        return False
    same = (given.st_dev, given.st_ino) == (seen.st_dev, seen.st_ino)
    return same and stat.S_ISREG(seen.st_mode)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _model_folders(model: str) -> list[str]:
    """The resolved folders a model is read from: its own and those its links name
    (``last``, ``best`` or a checkpoint re-pointed out of the run)."""
    folders = [os.path.realpath(model)]
    with contextlib.suppress(OSError), os.scandir(model) as entries:
        for entry in entries:
            if entry.is_symlink() and os.path.isdir(entry.path):
                folders.append(os.path.realpath(entry.path))
    return folders


def _file_of(output: str, folders: list[str]) -> str | None:
    """The file under ``folders`` that ``output`` already is (same inode, through links
    and hard links), or None. Linked folders inside are not walked (no cycles)."""
    try:
        seen = os.stat(output)
    except OSError:
        return None
    if not stat.S_ISREG(seen.st_mode):
        return None
    for root in folders:
        for folder, _, files in os.walk(root):
            for name in files:
                with contextlib.suppress(OSError):
                    st = os.stat(os.path.join(folder, name))
                    if (st.st_dev, st.st_ino) == (seen.st_dev, seen.st_ino):
                        return os.path.join(folder, name)
    return None


def refuse_writing_into_models(
    output: str | os.PathLike | None, models: Iterable[str | os.PathLike | None]
) -> None:
    """Refuse an ``output`` that would replace or add to what a model being read holds
    (a run or an export): any existing file of its tree (its checkpoints, meta.json,
    trainer state, kept weights; through links and hard links too), or a new name in
    one of its folders. A new file beside the run's top-level files (``RUN/curves.png``)
    is allowed: it replaces nothing the model is read from."""
    if not output or os.fspath(output) == "-" or _is_special(Path(output)):
        return
    output = os.fspath(output)
    out = os.path.realpath(output)
    for model in models:
        if not model:
            continue
        model = os.fspath(model)
        if not os.path.isdir(model):
            refuse_overwriting_inputs(output, [model])
            continue
        top, *linked = folders = _model_folders(model)
        if (hit := _file_of(output, folders)) is not None:
            problem = f"is {hit}, a file of the model being read"
        elif any(_within(out, f) for f in linked) or (
            _within(out, top) and os.path.dirname(out) != top
        ):
            problem = f"is inside a folder of the model {model} being read"
        else:
            continue
        raise DataError(output, None, f"{problem}: the output would damage it; write elsewhere")
