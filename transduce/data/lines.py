"""Physical lines of an input file: opened as bytes (gunzipped when it is gzip), numbered
from 1, cut at a length no sentence has, decoded as UTF-8 one line at a time.

The readers in :mod:`transduce.data.corpus`, :mod:`transduce.data.records`,
:mod:`transduce.data.series` and :mod:`transduce.data.streams` build on these, so every
one of them names ``path:line`` the same way and stops at the same bounds.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from transduce.errors import DataError, PathLike

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = "\ufeff"


class _BadLine(Exception):
    """One line's problem: `kind` is the short key counted in reports, `message` the detail."""

    def __init__(self, kind: str, message: str | None = None, path: PathLike | None = None):
        super().__init__(message or kind)
        self.kind = kind
        self.message = message or kind
        self.path = path


@contextmanager
def _open_bytes(path: PathLike) -> Iterator[BinaryIO]:
    """Open `path` for binary reading, gunzipping it if it is named *.gz or starts like gzip."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
    except FileNotFoundError:
        raise DataError(path, None, not_found(path)) from None
    except IsADirectoryError:
        raise DataError(path, None, "is a directory, not a file") from None
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror or e}") from None
    with f:
        # peek rather than read+seek, so pipes (e.g. /dev/stdin) work too
        if os.fspath(path).endswith(".gz") or f.peek(2)[:2] == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                yield gz
        else:
            yield f


# A line longer than this is no sentence (an endless stream such as /dev/zero, a binary
# file): reading stops there with one error instead of filling the memory.
MAX_LINE_BYTES = 1 << 20
# Whole files read at once (vocabularies, chatterbot YAML, run descriptions).
MAX_FILE_BYTES = 64 << 20


def not_found(path: PathLike) -> str:
    """``file not found``, naming the ``transduce data get`` that installs a corpus file."""
    from transduce.data.catalogue import dataset_for

    name = dataset_for(os.fspath(path))
    return (
        f"file not found (install it with: transduce data get {name})"
        if name
        else ("file not found")
    )


def read_capped(path: PathLike, limit: int = MAX_FILE_BYTES, what: str = "file") -> bytes:
    """The bytes of ``path``, at most ``limit`` of them; a missing file, a directory, or
    one over the limit is one DataError naming it."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except FileNotFoundError:
        raise DataError(path, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, None, f"is a directory, not a {what}") from None
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None
    if len(raw) > limit:
        raise DataError(path, None, f"over {limit:,} bytes: not a {what}")
    return raw


def _numbered_lines(
    f: BinaryIO, path: PathLike, limit: int | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield (1-based line number, line bytes without LF / CRLF / trailing CR), at most
    `limit`; a line over MAX_LINE_BYTES is a DataError."""
    number = 0
    try:
        while raw := f.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise DataError(
                    path,
                    number,
                    f"a line over {MAX_LINE_BYTES:,} bytes (not text, or an "
                    "endless stream such as /dev/zero)",
                )
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            yield number, raw
            if number == limit:  # stop before reading on, so nothing past the limit is touched
                return
    except (OSError, EOFError, zlib.error) as e:
        # Corrupt or truncated gzip data surfaces while reading, not at open; gzip decodes
        # ahead in blocks, so the failure can only be placed after the last good line.
        problem = f"cannot read past line {number} (corrupt or truncated file?): {e}"
        raise DataError(path, None, problem) from None


def _decode(raw: bytes, number: int) -> str:
    """Decode one line as UTF-8, dropping a BOM at the start of the file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.end].hex(" ")
        before = raw[: e.start].decode("utf-8", errors="replace")[-20:]
        message = f"invalid UTF-8 at byte {e.start + 1}: {e.reason} (0x{bad}) after {before!r}"
        raise _BadLine("invalid UTF-8", message) from None
    return text.removeprefix(_BOM) if number == 1 else text
