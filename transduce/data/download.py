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
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from transduce.config import default_data_dir
from transduce.data import installing
from transduce.data.catalogue import DataFile, Dataset, lookup
from transduce.data.installing import _CHUNK, PARTIAL, _local_candidates, _mismatch

# Re-exported: the errors and the checks have always been found here.
from transduce.data.installing import ChecksumError as ChecksumError
from transduce.data.installing import DownloadError as DownloadError
from transduce.data.installing import install as install
from transduce.data.installing import is_installed as is_installed
from transduce.data.installing import sha256_of as sha256_of
from transduce.errors import DataError

log = logging.getLogger(__name__)

#: A base URL that stands in for ``https://``: ``$MIRROR/raw.githubusercontent.com/...``.
MIRROR_ENV = "TRANSDUCE_DATA_MIRROR"


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
        with installing._open_write(output_file) as out:
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
        what = names[0] if len(names) == 1 else "data get"
        what = what if len(what) <= 80 else what[:77] + "..."  # a pasted paragraph
        raise DownloadError(what, str(err.args[0])) from None
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
