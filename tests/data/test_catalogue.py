"""The pinned catalogue: its checksums are those of the real files, its sources are pinned to
commits, and it provides every file the recipes read."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from transduce.data.catalogue import CATALOGUE, UNVERIFIED, lookup
from transduce.data.download import is_installed

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TRANSDUCE_DATA", REPO.parent / "shared" / "data"))
PINNED = [f for d in CATALOGUE.values() if d.name not in UNVERIFIED for f in d.files]


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not found (set TRANSDUCE_DATA)")
@pytest.mark.parametrize("name", [n for n in CATALOGUE if n not in UNVERIFIED])
def test_pinned_checksums_are_those_of_the_files_we_measured_on(name):
    for f in CATALOGUE[name].files:
        assert is_installed(DATA, f), f.dest
        if not f.gzip:  # a recompressed file's size differs by gzip implementation
            assert (DATA / f.dest).stat().st_size == f.size, f.dest


def test_every_source_is_pinned_to_a_commit_and_a_checksum():
    for f in PINNED:
        assert re.search(r"/[0-9a-f]{40}/", f.url), f.url
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256 or ""), f.dest
        assert f.url.startswith("https://")
    dests = [f.dest for f in PINNED]
    assert len(dests) == len(set(dests))


def _recipe_paths() -> set[str]:
    """Every ``$TRANSDUCE_DATA/...`` path in the configs and the README."""
    texts = [p.read_text(encoding="utf-8") for p in (REPO / "configs").glob("*.yaml")]
    texts.append((REPO / "README.md").read_text(encoding="utf-8"))
    found = set()
    for text in texts:
        found.update(re.findall(r"\$\{?TRANSDUCE_DATA\}?/([\w./-]+\w)", text))
    return found


def test_the_catalogue_provides_every_file_the_recipes_read():
    dests = {f.dest for d in CATALOGUE.values() for f in d.files}
    paths = _recipe_paths()
    assert "multi30k/train.de.gz" in paths and "m4/Hourly-train.csv" in paths
    for path in paths:
        assert any(d == path or d.startswith(path + "/") for d in dests), path


def test_recipes_named_by_the_catalogue_exist():
    for d in CATALOGUE.values():
        for recipe in d.recipes:
            assert list((REPO / "configs").glob(recipe)), recipe


def test_other_tatoeba_languages_are_unpinned_and_unknown_names_fail():
    deu = lookup("tatoeba-deu")
    assert deu.files[0].url.endswith("/anki/deu-eng.zip") and deu.files[0].sha256 is None
    assert lookup("tatoeba-ell") is CATALOGUE["tatoeba-ell"]
    with pytest.raises(KeyError, match="tatoeba-<code>"):
        lookup("wmt14")


def test_an_unverified_entry_pins_nothing_it_could_not_check():
    """No invented checksum: an entry that could not be downloaded here says so."""
    for name in UNVERIFIED:
        d = CATALOGUE[name]
        assert all(f.sha256 is None and f.archive_sha256 is None for f in d.files), name
        assert "NOT PINNED" in d.description


def test_the_wmt14_entry_installs_from_the_loopback_server_and_prints_its_checksums(
    tmp_path, monkeypatch
):
    import hashlib

    from tests.loopback import LoopbackServer
    from transduce.data import download

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    wmt = CATALOGUE["wmt14-en-de"]
    served = {f.url: f"{f.dest} line\n".encode() for f in wmt.files}
    with LoopbackServer() as srv:
        for url, data in served.items():
            srv.add(url, data)
        monkeypatch.setenv(download.MIRROR_ENV, srv.base)
        result = download.get(["wmt14-en-de"], tmp_path / "data", progress=False)
    assert len(result.installed) == 6
    for f in wmt.files:
        assert (tmp_path / "data" / f.dest).read_bytes() == served[f.url]
        assert result.unpinned[f.dest] == hashlib.sha256(served[f.url]).hexdigest()
