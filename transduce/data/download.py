"""Verified downloads of the corpora in :mod:`transduce.data.catalogue` (``transduce data get``).

pooch (Uieda et al. 2020, "Pooch: A friend to fetch your data files", JOSS 5(45), 1943) does
the HTTP, the progress bar and the checked download of pinned files; this module decides
what to fetch, unpacks archives and verifies every file it installs.

Guarantees: nothing reaches its final name unverified. Downloads and unpacked files are
written under ``ROOT/.partial`` and renamed into place (same file system) only after their
SHA-256 matches; any failure deletes what it wrote. A second ``get`` verifies what is
already there, skips it, and fetches the rest from the start (a file interrupted half-way
is fetched again whole). Every failure becomes one :class:`DownloadError` line that names the
file and says what to do.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import logging
import os
import re
import shutil
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from transduce.config import default_data_dir
from transduce.data.catalogue import DataFile, Dataset, lookup
from transduce.errors import DataError

log = logging.getLogger(__name__)

#: A base URL that stands in for ``https://``: ``$MIRROR/raw.githubusercontent.com/...``.
MIRROR_ENV = "TRANSDUCE_DATA_MIRROR"
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


@dataclass
class GetResult:
    """What :func:`get` did: files written now, files already in place, and the checksums
    of files that have none pinned."""

    root: Path
    installed: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    unpinned: dict[str, str] = field(default_factory=dict)


def default_dir() -> Path:
    """``$TRANSDUCE_DATA`` when set, else the per-user cache (see ``default_data_dir``)."""
    env = os.environ.get("TRANSDUCE_DATA")
    return Path(env) if env else default_data_dir()


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


def official_url(url: str) -> str:
    """``url``, or its copy under ``$TRANSDUCE_DATA_MIRROR`` (same host and path below it)."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    return mirror.rstrip("/") + "/" + url.split("://", 1)[1]


# ------------------------------------------------------------------------------ fetching


def fetch(
    url: str, folder: Path, known_hash: str | None, progress: bool, label: str | None = None
) -> Path:
    """Download ``url`` into ``folder`` (named after its last path part) with pooch; a
    ``known_hash`` is checked before the file gets its name. Errors name ``label``."""
    import pooch
    from tqdm import tqdm

    pooch.get_logger().setLevel(logging.WARNING)
    name = Path(urlsplit(url).path).name or "download"
    # total=1 until pooch sets the real size: a tqdm with no total has no truth value
    bar = tqdm(desc=name, total=1, unit="B", unit_scale=True, disable=None if progress else True)
    http = pooch.HTTPDownloader(progressbar=bar, chunk_size=_CHUNK, timeout=60)

    def download(url: str, output_file: str, pooch_obj: object) -> None:
        with _open_write(output_file) as out:
            http(url, out, pooch_obj)

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    target.unlink(missing_ok=True)
    hash_spec = None if known_hash is None else f"sha256:{known_hash}"
    try:
        pooch.retrieve(url, hash_spec, fname=name, path=folder, downloader=download)
    except ValueError as err:
        if "hash" not in str(err):
            raise
        got = re.search(r"but got ([0-9a-f]{64})", str(err))
        raise ChecksumError(
            label or name, _mismatch(got.group(1) if got else "?", known_hash)
        ) from None
    finally:
        bar.close()
    return target


def _mismatch(got: str, expected: str | None) -> str:
    return (
        f"checksum mismatch (sha256 {got[:16]}..., pinned {str(expected)[:16]}...); "
        "the file was deleted. Run the command again; if it fails again the source has "
        "changed: install a copy you trust with --from FILE"
    )


# ------------------------------------------------------------------------------ installing


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


# ------------------------------------------------------------------------------ get


def get(
    names: Sequence[str],
    root: str | os.PathLike | None = None,
    source: str | None = None,
    catalogue: dict[str, Dataset] | None = None,
    progress: bool = True,
) -> GetResult:
    """Install the datasets ``names`` under ``root`` (default :func:`default_dir`), from
    their official sources, or from ``source``: a local file or folder, a file URL, or the
    base URL of a copy laid out like the data root. ``catalogue`` replaces the built-in one
    (tests). Raises :class:`DownloadError` (a ``DataError``) with one line on any failure."""
    root = Path(root) if root is not None else default_dir()
    try:
        datasets = [lookup(name, catalogue) for name in names]
    except KeyError as err:
        raise DownloadError(names[0] if len(names) == 1 else "data get", str(err.args[0])) from None
    result = GetResult(root)
    with _guard(str(root), None, root, ""):
        root.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        if (root / PARTIAL).exists():
            log.info("%s: removing what an interrupted download left", root / PARTIAL)
            shutil.rmtree(root / PARTIAL)
        try:
            for dataset in datasets:
                missing = []
                for f in dataset.files:
                    if is_installed(root, f):
                        result.present.append(f.dest)
                    else:
                        missing.append(f)
                if missing:
                    _get_files(dataset, missing, root, source, progress, result)
        finally:
            shutil.rmtree(root / PARTIAL, ignore_errors=True)
    return result


def _get_files(
    dataset: Dataset,
    files: list[DataFile],
    root: Path,
    source: str | None,
    progress: bool,
    result: GetResult,
) -> None:
    """Fetch and install ``files`` of ``dataset``: each download once (an archive serves
    several files), or from ``--from`` (a URL with a file name is fetched, then used as a
    local file; a URL without one is the base of a copy laid out like the data root)."""
    staging = root / PARTIAL / dataset.name
    jobs: list[tuple[str, str | None, list[DataFile]]] = []
    if source is not None and re.match(r"https?://", source):
        if Path(urlsplit(source).path).suffix:
            with _guard(files[0].dest, source, root, dataset.name):
                source = str(fetch(source, staging, None, progress))
        else:
            jobs = [(source.rstrip("/") + "/" + f.dest, None, [f]) for f in files]
    elif source is None:
        groups: dict[str, list[DataFile]] = {}
        for f in files:
            groups.setdefault(f.url, []).append(f)
        jobs = [(official_url(url), _known_hash(group[0]), group) for url, group in groups.items()]
    for url, known, group in jobs:
        with _guard(group[0].dest, url, root, dataset.name):
            label = group[0].dest if len(group) == 1 else None
            path = fetch(url, staging, known, progress, label)
            for f in group:
                _record(f, install(path, f, root), result)
            path.unlink()
    if source is not None and not jobs:
        _from_local(Path(source).expanduser(), dataset, files, root, result)


def _known_hash(f: DataFile) -> str | None:
    """The pinned hash of what is downloaded for ``f``: the file, or its archive."""
    return f.sha256 if f.member is None and not f.gzip else f.archive_sha256


def _from_local(
    local: Path, dataset: Dataset, files: list[DataFile], root: Path, result: GetResult
) -> None:
    if not local.exists():
        raise DownloadError(local, "no such file or folder (--from)")
    for f in files:
        found = _local_candidates(local, f, single=len(dataset.files) == 1)
        if not found:
            raise DownloadError(
                f.dest,
                f"--from {local} has no {Path(f.dest).name} (nor "
                f"{Path(urlsplit(f.url).path).name}); give the folder or file that has it",
            )
        with _guard(f.dest, None, root, dataset.name):
            _record(f, install(found[0], f, root), result)


def _record(f: DataFile, unpinned_sha: str | None, result: GetResult) -> None:
    result.installed.append(f.dest)
    if unpinned_sha is not None:
        result.unpinned[f.dest] = unpinned_sha


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One ``get`` at a time per folder (an advisory lock on the folder itself)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(root, "another `transduce data get` is writing here") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def _guard(what: str, url: str | None, root: Path, name: str) -> Iterator[None]:
    """Turn whatever a download, unpacking or write raises into one line naming ``what``."""
    import requests

    try:
        yield
    except DataError:
        raise
    except requests.exceptions.HTTPError as err:
        raise DownloadError(what, _http_message(url, err.response.status_code, name)) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        raise DownloadError(
            what,
            f"cannot reach {urlsplit(url or '').netloc} ({_reason(err)}); check the "
            "network connection, or install offline with --from FILE_OR_FOLDER",
        ) from None
    except requests.exceptions.RequestException as err:
        raise DownloadError(
            what,
            f"the download from {url} broke off ({type(err).__name__}); nothing "
            "was kept: run the same command again",
        ) from None
    except zipfile.BadZipFile as err:
        raise DownloadError(what, f"not a valid zip archive ({err}); fetch it again") from None
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(
                what,
                f"disk full writing to {root}; nothing was kept: free some space "
                "or pass --dir on another disk, then run the command again",
            ) from None
        raise DownloadError(
            what,
            f"{err.strerror or err} ({err.filename or root}); "
            "check the folder, or pass --dir FOLDER you can write to",
        ) from None


def _http_message(url: str | None, status: int, name: str) -> str:
    hint = "check the address, or fetch the file another way and install it with --from FILE"
    if url and "manythings.org" in url:
        hint = (
            "manythings.org often refuses downloads that do not come from a web browser: "
            f"download it in a browser, then run: transduce data get {name} --from FILE"
        )
    return f"HTTP {status} from {url}; {hint}"


def _reason(err: Exception) -> str:
    """The useful end of a requests error chain: 'Connection refused', 'Name or service ...'."""
    text = str(err)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if match:
        return match.group(1).strip()
    return "timed out" if "timed out" in text.lower() else "connection failed"
