"""The pinned catalogue: its checksums are those of the real files, its sources are pinned to
commits, and it provides every file the recipes read."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from transduce.data.catalogue import CATALOGUE, lookup
from transduce.data.download import is_installed

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TRANSDUCE_DATA", REPO.parent / "shared" / "data"))
PINNED = [f for d in CATALOGUE.values() for f in d.files]


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not found (set TRANSDUCE_DATA)")
@pytest.mark.parametrize("name", list(CATALOGUE))
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
    dests = {f.dest for f in PINNED}
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
