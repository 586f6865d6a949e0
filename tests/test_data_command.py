"""``transduce data list|get`` end to end, with the real catalogue: a loopback server serves
the real files (where ../shared/data is present) under their official paths."""

from __future__ import annotations

import filecmp
import gzip
import io
import logging
import os
import zipfile
from pathlib import Path

import pytest

from tests.loopback import LoopbackServer, closed_port
from transduce import config
from transduce.commands.cli import main
from transduce.data import download
from transduce.data.catalogue import CATALOGUE

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRANSDUCE_DATA", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not found")
PLAIN = ["multi30k", "tatoeba-ell", "m4-hourly", "chatterbot"]  # files served as they are


@pytest.fixture
def offline(monkeypatch):
    """No internet: the official hosts are replaced by a port where nothing listens."""
    monkeypatch.delenv("TRANSDUCE_DATA", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{closed_port()}")


def test_list_names_every_corpus_with_its_terms(capsys, offline, tmp_path):
    assert main(["data", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for d in CATALOGUE.values():
        assert d.name in out and d.license in out and d.source in out
    assert "configs/m4_hourly.yaml" in out and "tatoeba-<code>" in out


@needs_data
def test_get_downloads_the_real_files_byte_for_byte(capsys, caplog, monkeypatch, tmp_path):
    monkeypatch.delenv("TRANSDUCE_DATA", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with LoopbackServer() as srv:
        for name in PLAIN:
            for f in CATALOGUE[name].files:
                srv.add(f.url, (DATA / f.dest).read_bytes())
        monkeypatch.setenv(download.MIRROR_ENV, srv.base)
        with caplog.at_level(logging.INFO, logger="transduce"):
            rc = main(["data", "get", *PLAIN, "--dir", str(tmp_path / "d"), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out == f"{tmp_path / 'd'}\n"  # only the folder: $(transduce data get ...)
    assert f"export TRANSDUCE_DATA={tmp_path / 'd'}" in caplog.text  # printed on stderr
    for name in PLAIN:
        for f in CATALOGUE[name].files:
            assert filecmp.cmp(DATA / f.dest, tmp_path / "d" / f.dest, shallow=False), f.dest
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "dialog",
        "m4",
        "multi30k",
        "tatoeba",
    ]


@needs_data
def test_get_from_a_browser_downloaded_zip_verifies_its_members(capsys, offline, tmp_path):
    """manythings.org zips hold ``spa.txt`` at the top; the pinned text must match."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("spa.txt", gzip.decompress((DATA / "tatoeba/spa.txt.gz").read_bytes()))
        zf.write(DATA / "tatoeba/spa-eng_about.txt", "_about.txt")
    (tmp_path / "spa-eng.zip").write_bytes(buf.getvalue())
    rc = main(
        [
            "data",
            "get",
            "tatoeba-spa",
            "--dir",
            str(tmp_path / "d"),
            "--from",
            str(tmp_path / "spa-eng.zip"),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    spa = CATALOGUE["tatoeba-spa"].files[0]
    assert download.is_installed(tmp_path / "d", spa)


def test_errors_are_one_line_with_exit_code_2(capsys, offline, tmp_path):
    assert main(["data", "get", "multi30k", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("transduce data: error: multi30k/") and "cannot reach" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert main(["data", "get", "wmt14"]) == 2
    assert capsys.readouterr().err.startswith("transduce data: error: wmt14: no dataset 'wmt14'")


@needs_data
def test_default_folder_is_the_per_user_cache(capsys, offline, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["data", "get", "m4-hourly", "--from", str(DATA), "--no-progress"]) == 0
    expected = tmp_path / "cache" / "transduce" / "data"
    assert capsys.readouterr().out == f"{expected}\n"
    assert (expected / "m4" / "Hourly-test.csv").is_file()


@pytest.mark.skipif(not (REPO.parent / "shared" / "data").exists(), reason="no ../shared/data")
def test_get_without_a_folder_names_the_one_the_commands_read(
    capsys, offline, monkeypatch, tmp_path
):
    """``export TRANSDUCE_DATA=$(transduce data get m4-hourly)`` beside ../shared/data went
    to the network for files at hand (offline: an error and an empty variable, so every
    later $TRANSDUCE_DATA/m4/... path was /m4/...); now it prints that folder, writing
    nothing anywhere."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(REPO)
    assert main(["data", "get", "m4-hourly", "multi30k", "--no-progress"]) == 0
    shared = (REPO.parent / "shared" / "data").resolve()
    assert capsys.readouterr().out == f"{shared}\n"
    assert not (tmp_path / "cache").exists()
    assert main(["data", "list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if "[in " in line]
    assert any(line.startswith("m4-hourly") for line in listed)
    if not all(name in [x.split()[0] for x in listed] for name in CATALOGUE):
        # some here, some not: one line saying which (it downloaded the ones at hand)
        assert main(["data", "get", "all", "--no-progress"]) == 2
        assert "but not " in capsys.readouterr().err


def test_data_root_falls_back_to_the_per_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("TRANSDUCE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")  # no ../shared/data here
    monkeypatch.setattr(config, "__file__", str(tmp_path / "a" / "b" / "config.py"))
    assert config.data_root() == tmp_path / "cache" / "transduce" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.data_root() == tmp_path / ".cache" / "transduce" / "data"
    (tmp_path / "shared" / "data").mkdir(parents=True)
    assert config.data_root() == Path("..", "shared", "data")


def test_a_long_unknown_name_is_echoed_cut(capsys):
    assert main(["data", "get", "x" * 300]) == 2
    err = capsys.readouterr().err
    assert "no dataset 'xxx" in err and "x" * 81 not in err and len(err) < 400
