"""transduce.data.download against a loopback HTTP server with stand-in files.

The stand-in catalogue has its own checksums (computed from the bytes served here); the
real pinned catalogue is checked against the real files in tests/data/test_catalogue.py and
tests/test_data_command.py.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from tests.loopback import LoopbackServer, closed_port
from transduce.data import download, installing
from transduce.data.catalogue import DataFile, Dataset
from transduce.data.download import DownloadError, get, sha256_of

BASE = "https://raw.githubusercontent.com/toy/corpus/0123456789abcdef0123456789abcdef01234567"
TEXT = "".join(f"sentence {i}\tphrase {i}\n" for i in range(3000)).encode()
ABOUT = b"CC-BY 2.0 (France) Attribution: tatoeba.org\n"
CSV = b'"V1","V2"\n' + b"".join(b'"H%d","%d"\n' % (i, i) for i in range(2000))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


ZIP = zipped({"toy-eng/toy.txt": TEXT, "toy-eng/_about.txt": ABOUT})
GZ = gzip.compress(TEXT, mtime=0)

CATALOGUE = {
    "plain": Dataset(
        "plain",
        "two plain files",
        "CC0",
        BASE,
        ("toy.yaml",),
        (
            DataFile("toy/train.txt.gz", f"{BASE}/data/train.txt.gz", sha(GZ), len(GZ)),
            DataFile("toy/series.csv", f"{BASE}/Dataset/series.csv", sha(CSV), len(CSV)),
        ),
    ),
    "zipped": Dataset(
        "zipped",
        "a zip: text stored gzipped, and its about file",
        "CC-BY",
        BASE,
        (),
        (
            DataFile(
                "tatoeba/toy.txt.gz",
                f"{BASE}/toy-eng.zip",
                sha(TEXT),
                member="toy-eng/toy.txt",
                gzip=True,
                archive_sha256=sha(ZIP),
            ),
            DataFile(
                "tatoeba/toy-eng_about.txt",
                f"{BASE}/toy-eng.zip",
                sha(ABOUT),
                member="toy-eng/_about.txt",
                archive_sha256=sha(ZIP),
            ),
        ),
    ),
}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with LoopbackServer() as srv:
        srv.add(f"{BASE}/data/train.txt.gz", GZ)
        srv.add(f"{BASE}/Dataset/series.csv", CSV)
        srv.add(f"{BASE}/toy-eng.zip", ZIP)
        monkeypatch.setenv(download.MIRROR_ENV, srv.base)
        yield srv


def test_download_lands_verified_and_is_not_fetched_again(server, tmp_path):
    result = get(["plain", "zipped"], tmp_path, catalogue=CATALOGUE, progress=False)
    assert files_under(tmp_path) == sorted(
        ["toy/train.txt.gz", "toy/series.csv", "tatoeba/toy.txt.gz", "tatoeba/toy-eng_about.txt"]
    )
    assert (tmp_path / "toy/train.txt.gz").read_bytes() == GZ
    assert (tmp_path / "toy/series.csv").read_bytes() == CSV
    assert gzip.decompress((tmp_path / "tatoeba/toy.txt.gz").read_bytes()) == TEXT
    assert sha256_of(tmp_path / "tatoeba/toy.txt.gz", gunzip=True) == sha(TEXT)
    assert len(result.installed) == 4 and result.present == []
    assert server.hits[server.path_of(f"{BASE}/toy-eng.zip")] == 1  # one archive, two files
    again = get(["plain", "zipped"], tmp_path, catalogue=CATALOGUE, progress=False)
    assert again.installed == [] and len(again.present) == 4
    assert sum(server.hits.values()) == 3


def test_corrupted_download_is_rejected_and_removed(server, tmp_path):
    bad = bytearray(CSV)
    bad[100] ^= 1
    server.add(f"{BASE}/Dataset/series.csv", bytes(bad))
    with pytest.raises(DownloadError) as err:
        get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    message = str(err.value)
    assert message.startswith("toy/series.csv: checksum mismatch (sha256 " + sha(bad)[:16])
    assert "\n" not in message
    assert files_under(tmp_path) == ["toy/train.txt.gz"]  # the good file stays, nothing else


def test_corrupted_archive_member_is_rejected(server, tmp_path):
    """A re-zipped archive passes on its members; one with a changed member does not."""
    bad = zipped({"toy-eng/toy.txt": TEXT + b"extra\t\n", "toy-eng/_about.txt": ABOUT})
    path = tmp_path / "toy-eng.zip"
    path.write_bytes(bad)
    root = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"tatoeba/toy.txt.gz .*checksum mismatch"):
        get(["zipped"], root, source=str(path), catalogue=CATALOGUE, progress=False)
    assert files_under(root) == []
    server.add(f"{BASE}/toy-eng.zip", bad)  # from the official URL the archive hash fails
    with pytest.raises(DownloadError, match=r"toy-eng\.zip: checksum mismatch"):
        get(["zipped"], root, catalogue=CATALOGUE, progress=False)
    assert files_under(root) == []


def test_a_corrupt_installed_file_is_replaced(server, tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy/series.csv").write_bytes(CSV[:-10])
    result = get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    assert "toy/series.csv" in result.installed
    assert (tmp_path / "toy/series.csv").read_bytes() == CSV


def test_interrupted_download_leaves_nothing_and_the_next_get_finishes(server, tmp_path):
    server.cut(f"{BASE}/Dataset/series.csv")
    with pytest.raises(DownloadError) as err:
        get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    assert "series.csv" in str(err.value) and "run the same command again" in str(err.value)
    assert files_under(tmp_path) == ["toy/train.txt.gz"]  # no partial file anywhere
    (tmp_path / ".partial").mkdir()
    (tmp_path / ".partial/left-by-a-killed-run.tmp").write_bytes(b"x" * 10)
    result = get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    assert result.installed == ["toy/series.csv"] and result.present == ["toy/train.txt.gz"]
    assert files_under(tmp_path) == ["toy/series.csv", "toy/train.txt.gz"]
    assert (tmp_path / "toy/series.csv").read_bytes() == CSV


def test_no_network_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(DownloadError) as err:
        get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    message = str(err.value)
    assert message.startswith("toy/train.txt.gz: cannot reach 127.0.0.1:")
    assert "refused" in message and "--from" in message and "\n" not in message
    assert files_under(tmp_path) == []


def test_http_errors_name_the_file_and_what_to_do(server, tmp_path):
    server.fail(f"{BASE}/data/train.txt.gz", 404)
    with pytest.raises(DownloadError, match=r"^toy/train.txt.gz: HTTP 404 from http://"):
        get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    # an unpinned Tatoeba language comes from manythings.org, which refuses scripts
    server.fail("https://www.manythings.org/anki/xyz-eng.zip", 403)
    with pytest.raises(DownloadError) as err:
        get(["tatoeba-xyz"], tmp_path, progress=False)
    assert "HTTP 403" in str(err.value) and "transduce data get tatoeba-xyz --from" in str(
        err.value
    )
    assert files_under(tmp_path) == []


def test_unpinned_language_installs_and_reports_its_checksum(server, tmp_path):
    server.add(
        "https://www.manythings.org/anki/xyz-eng.zip",
        zipped({"xyz.txt": TEXT, "_about.txt": ABOUT}),
    )
    result = get(["tatoeba-xyz"], tmp_path, progress=False)
    assert (tmp_path / "tatoeba/xyz.txt").read_bytes() == TEXT
    assert result.unpinned == {
        "tatoeba/xyz.txt": sha(TEXT),
        "tatoeba/xyz-eng_about.txt": sha(ABOUT),
    }


def test_from_local_file_and_folder_work_offline(monkeypatch, tmp_path):
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{closed_port()}")  # no network
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl/toy-eng.zip").write_bytes(zipped({"toy.txt": TEXT, "_about.txt": ABOUT}))
    root = tmp_path / "data"
    get(["zipped"], root, source=str(tmp_path / "dl/toy-eng.zip"), catalogue=CATALOGUE)
    assert gzip.decompress((root / "tatoeba/toy.txt.gz").read_bytes()) == TEXT
    # a folder laid out like the data root, or holding the upstream names
    (tmp_path / "copy/toy").mkdir(parents=True)
    (tmp_path / "copy/toy/train.txt.gz").write_bytes(GZ)
    (tmp_path / "copy/series.csv").write_bytes(CSV)
    result = get(["plain"], root, source=str(tmp_path / "copy"), catalogue=CATALOGUE)
    assert sorted(result.installed) == ["toy/series.csv", "toy/train.txt.gz"]
    # the bare text of a gzipped file is compressed on the way in
    (tmp_path / "toy.txt").write_bytes(TEXT)
    os.remove(root / "tatoeba/toy.txt.gz")
    get(["zipped"], root, source=str(tmp_path / "toy.txt"), catalogue=CATALOGUE)
    assert sha256_of(root / "tatoeba/toy.txt.gz", gunzip=True) == sha(TEXT)
    with pytest.raises(DownloadError, match="no such file or folder"):
        get(["plain"], tmp_path / "other", source=str(tmp_path / "missing"), catalogue=CATALOGUE)


def test_from_mirror_url_laid_out_like_the_data_root(server, tmp_path):
    server.add("https://mirror.example/data/toy/train.txt.gz", GZ)
    server.add("https://mirror.example/data/toy/series.csv", CSV)
    result = get(
        ["plain"],
        tmp_path,
        source=f"{server.base}/mirror.example/data",
        catalogue=CATALOGUE,
        progress=False,
    )
    assert sorted(result.installed) == ["toy/series.csv", "toy/train.txt.gz"]
    # a URL to one file: fetched, then unpacked like a local one
    server.add("https://mirror.example/toy-eng.zip", zipped({"toy.txt": TEXT, "_about.txt": ABOUT}))
    result = get(
        ["zipped"],
        tmp_path,
        source=f"{server.base}/mirror.example/toy-eng.zip",
        catalogue=CATALOGUE,
        progress=False,
    )
    assert sorted(result.installed) == ["tatoeba/toy-eng_about.txt", "tatoeba/toy.txt.gz"]
    assert files_under(tmp_path) == sorted(
        [*result.installed, "toy/series.csv", "toy/train.txt.gz"]
    )


class _FullDisk(io.FileIO):
    """A file on a disk with ``room`` bytes left: the write past that fails with ENOSPC."""

    room = 5000

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
        return super().write(data)


@pytest.mark.parametrize("offline", [False, True])
def test_full_disk_is_one_line_and_leaves_nothing(server, tmp_path, monkeypatch, offline):
    monkeypatch.setattr(installing, "_open_write", lambda path: _FullDisk(path, "w"))
    source = None
    if offline:
        (tmp_path / "toy-eng.zip").write_bytes(ZIP)
        source = str(tmp_path / "toy-eng.zip")
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        get(["zipped"], root, source=source, catalogue=CATALOGUE, progress=False)
    message = str(err.value)
    assert message.startswith("tatoeba/toy.txt.gz: disk full writing to")
    assert "--dir" in message and "\n" not in message
    assert files_under(root) == []


def test_unknown_name_and_a_busy_folder(tmp_path):
    with pytest.raises(DownloadError, match="no dataset 'nope'; known: plain, zipped"):
        get(["nope"], tmp_path, catalogue=CATALOGUE)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(DownloadError, match="another `transduce data get`"):
            get(["plain"], tmp_path, catalogue=CATALOGUE)
    finally:
        os.close(fd)


def test_ctrl_c_half_way_leaves_nothing(server, tmp_path, monkeypatch):
    class Interrupted(io.FileIO):
        def write(self, data) -> int:
            if self.tell() + len(data) > 3000:
                raise KeyboardInterrupt
            return super().write(data)

    monkeypatch.setattr(installing, "_open_write", lambda path: Interrupted(path, "w"))
    with pytest.raises(KeyboardInterrupt):
        get(["plain"], tmp_path, catalogue=CATALOGUE, progress=False)
    assert files_under(tmp_path) == []


# ------------------------------------------------------------------------------ size caps


def _lying_zip(member: str, data: bytes, declared: int) -> bytes:
    """A zip whose member header declares ``declared`` bytes (a zip bomb lies low)."""
    raw = bytearray(zipped({member: data}))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.find(sig)
        raw[at + offset : at + offset + 4] = declared.to_bytes(4, "little")
    return bytes(raw)


def test_an_unpinned_entry_has_a_cap():
    unpinned = DataFile("tatoeba/xyz.txt", "https://x/xyz-eng.zip", None, member="xyz.txt")
    assert 0 < unpinned.cap <= 64 << 20
    pinned = DataFile("a.txt", "https://x/a.txt", "0" * 64, size=1000)
    assert pinned.cap >= 16_000


def test_a_member_declaring_more_than_the_cap_is_not_extracted(tmp_path):
    archive = tmp_path / "xyz-eng.zip"
    archive.write_bytes(zipped({"xyz.txt": b"a\tb\n" * 1000}))
    f = DataFile("tatoeba/xyz.txt", "https://x/xyz-eng.zip", None, member="xyz.txt", max_bytes=1000)
    with pytest.raises(DownloadError, match="declares 4,000 bytes, over this entry's cap"):
        download.install(archive, f, tmp_path / "root")
    assert not (tmp_path / "root" / "tatoeba" / "xyz.txt").exists()


def test_a_member_lying_about_its_size_is_one_line(tmp_path):
    archive = tmp_path / "xyz-eng.zip"
    archive.write_bytes(_lying_zip("xyz.txt", b"\t" * 300_000, declared=10))
    f = DataFile("tatoeba/xyz.txt", "https://x/xyz-eng.zip", None, member="xyz.txt")
    with pytest.raises(DownloadError, match="a damaged zip archive"):
        download.install(archive, f, tmp_path / "root")
    leftovers = [p for p in (tmp_path / "root").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_plain_source_over_the_cap_is_refused(tmp_path):
    src = tmp_path / "big.txt"
    src.write_bytes(b"a\tb\n" * 1000)
    f = DataFile("x/big.txt", "https://x/big.txt", None, max_bytes=100)
    with pytest.raises(DownloadError, match="over this entry's cap of 100 bytes"):
        download.install(src, f, tmp_path / "root")
