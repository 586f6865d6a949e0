"""The front page, the documentation site and the release files agree with each other:
the README stays a front page whose links resolve, every page of docs/ is in the site's
navigation, and the version, license and changelog are written where packaging reads them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

import transduce

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 250
    assert "source .venv/bin/activate" in README  # the step a new user otherwise misses
    assert "make demo" in README and "make test" in README


def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return [f for item in node for f in _nav_files(item)]


def _mkdocs() -> dict:
    # mkdocs.yml may use !!python/name tags in future; plain keys are all this test needs
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)


def test_every_docs_page_is_in_the_navigation_and_back():
    nav = set(_nav_files(_mkdocs()["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert pages - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries without a page"


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)\s]+)\)", README):
        if re.match(r"\w+://|#|mailto:", target):
            continue
        path = target.split("#")[0]
        assert (ROOT / path).exists(), f"README links to a missing file: {target}"


def test_version_is_written_once():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    dynamic = meta["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "transduce.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", transduce.__version__)
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog
    assert f"## [{transduce.__version__}]" in changelog


def test_license_and_typing_marker_ship():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert (ROOT / "transduce" / "py.typed").is_file()
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["transduce"]
