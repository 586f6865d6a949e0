"""Installing a fetched (or local) data file: unpacking, size caps, checksums.

A file reaches ``ROOT/dest`` only through :func:`install`: it is copied (out of a zip,
gzipped when the entry asks for it) under ``ROOT/.partial``, refused past its size cap,
its SHA-256 checked against the pinned one, and only then renamed into place. Every
failure is one :class:`DownloadError` line naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from transduce.data.catalogue import DataFile
from transduce.errors import DataError

PARTIAL = ".partial"
_CHUNK = 1 << 16


class DownloadError(DataError):
    """One line: ``f"{path}: {problem}"``, the problem saying what to do."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(path, None, problem)

    def __reduce__(self):
        return type(self), (self.path, self.problem)


class ChecksumError(DownloadError):
    """A file's SHA-256 is not the pinned one."""


def sha256_of(path: str | os.PathLike, *, gunzip: bool = False) -> str:
    """Hex SHA-256 of a file (of its decompressed content when ``gunzip``)."""
    digest = hashlib.sha256()
    with (gzip.open if gunzip else open)(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_installed(root: Path, f: DataFile) -> bool:
    """``f`` is at ``root/f.dest`` with its pinned checksum (or present, if none is pinned)."""
    path = root / f.dest
    if not path.is_file():
        return False
    if f.sha256 is None:
        return True
    try:
        return sha256_of(path, gunzip=f.gzip) == f.sha256
    except (OSError, EOFError, zlib.error):
        return False


def _open_write(path: str | os.PathLike) -> BinaryIO:
    """Every byte this module writes goes through here (tests make it fail with ENOSPC)."""
    return open(path, "wb")


def _mismatch(got: str, expected: str | None) -> str:
    return (
        f"checksum mismatch (sha256 {got[:16]}..., pinned {str(expected)[:16]}...); "
        "the file was deleted. Run the command again; if it fails again the source has "
        "changed: install a copy you trust with --from FILE"
    )


@contextmanager
def _temp_in(folder: Path, name: str) -> Iterator[Path]:
    """A path in ``folder`` that is deleted unless the caller has renamed it away."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{name}.{os.getpid()}.tmp"
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _copy_stream(
    src: BinaryIO, tmp: Path, compress: bool, cap: int = 1 << 62, label: str = ""
) -> None:
    """Copy ``src`` into ``tmp`` (gzipped with ``compress``), refusing past ``cap`` bytes
    read: a zip's declared sizes may lie."""
    with _open_write(tmp) as raw:
        if not compress:
            _copy_capped(src, raw, cap, label or tmp.name)
            return
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as out:
            _copy_capped(src, out, cap, label or tmp.name)


def _copy_capped(src: BinaryIO, out: BinaryIO, cap: int, label: str) -> None:
    total = 0
    while block := src.read(_CHUNK):
        total += len(block)
        if total > cap:
            raise DownloadError(label, f"inflates past its size cap of {cap:,} bytes; refused")
        out.write(block)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _member_name(zf: zipfile.ZipFile, member: str, archive: Path) -> str:
    """``member`` if the archive has that path, else its one member with the same name
    (a zip downloaded from manythings.org has ``fra.txt`` where a re-zip has ``fra-eng/``)."""
    names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]
    if member in names:
        return member
    same = [n for n in names if n.rsplit("/", 1)[-1] == member.rsplit("/", 1)[-1]]
    if len(same) != 1:
        raise DownloadError(archive, f"no member {member} in this zip archive (has {names[:6]})")
    return same[0]


def install(src: Path, f: DataFile, root: Path) -> str | None:
    """Put ``f`` at ``root/f.dest`` from ``src`` (the file itself, its uncompressed text, or
    a zip holding it), verified. Returns its SHA-256 when none is pinned."""
    final = root / f.dest
    with _temp_in(root / PARTIAL, final.name) as tmp:
        if f.member is not None and zipfile.is_zipfile(src):
            with zipfile.ZipFile(src) as zf:
                name = _member_name(zf, f.member, src)
                declared = zf.getinfo(name).file_size
                if declared > f.cap:  # checked before a byte is extracted
                    raise DownloadError(
                        f.dest,
                        f"{src}: member {name} declares {declared:,} bytes, over "
                        f"this entry's cap of {f.cap:,}; refusing to extract it",
                    )
                try:
                    with zf.open(name) as stream:
                        _copy_stream(stream, tmp, compress=f.gzip, cap=f.cap, label=f.dest)
                except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                    raise DownloadError(f.dest, f"{src}: a damaged zip archive ({err})") from None
        else:
            if src.stat().st_size > f.cap and not _is_gzip(src):
                raise DownloadError(f.dest, f"{src} is over this entry's cap of {f.cap:,} bytes")
            with open(src, "rb") as stream:
                _copy_stream(stream, tmp, f.gzip and not _is_gzip(src), f.cap, f.dest)
        try:
            got = sha256_of(tmp, gunzip=f.gzip)
        except (OSError, EOFError, zlib.error) as err:
            raise DownloadError(f.dest, f"{src} is not a readable gzip file ({err})") from None
        if f.sha256 is not None and got != f.sha256:
            raise ChecksumError(f"{f.dest} (from {src})", _mismatch(got, f.sha256))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
    return got if f.sha256 is None else None


def _local_candidates(source: Path, f: DataFile, single: bool) -> list[Path]:
    """Where a file of a ``--from`` folder (or the ``--from`` file itself) may hold ``f``."""
    names = {Path(f.dest).name, Path(urlsplit(f.url).path).name}
    if f.member:
        names.add(f.member.rsplit("/", 1)[-1])
    if source.is_dir():
        found = [source / f.dest, *(source / n for n in sorted(names))]
        return [p for p in found if p.is_file()]
    if single or source.name in names or zipfile.is_zipfile(source):
        return [source]
    return []
