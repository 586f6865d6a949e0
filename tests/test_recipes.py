"""Recipes shipped as package data: names resolve to the YAML files, ``transduce recipes``
lists them, and ``configs/...`` paths in the README keep working."""

from pathlib import Path

import pytest

from transduce.commands.cli import main
from transduce.commands.recipes import RECIPE_DIR, describe, list_recipes, recipe_path
from transduce.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_recipes_are_the_repository_configs():
    names = list_recipes()
    assert "tatoeba_char_ell" in names and "m4_hourly" in names
    assert {p.name for p in names.values()} == {p.name for p in (ROOT / "configs").glob("*.yaml")}
    for path in names.values():
        assert path.parent == RECIPE_DIR and describe(path)


def test_a_name_resolves_and_loads():
    path = recipe_path("tatoeba_char_ell")
    assert path.name == "tatoeba_char_ell.yaml"
    assert load_config(path).model.cell == "lstm"
    assert recipe_path("tatoeba_char_ell.yaml") == path


def test_an_existing_file_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tatoeba_char_ell.yaml").write_text("train:\n  epochs: 1\n")
    assert recipe_path("tatoeba_char_ell.yaml") == Path("tatoeba_char_ell.yaml")
    # configs/NAME.yaml outside a checkout falls back to the shipped recipe
    assert recipe_path("configs/m4_hourly.yaml") == list_recipes()["m4_hourly"]


def test_unknown_name_lists_the_recipes():
    with pytest.raises(ConfigError, match=r"recipes: .*tatoeba_char_ell"):
        recipe_path("no_such_recipe")


def test_recipes_command_lists_names_and_descriptions(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    starts = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert starts == list(list_recipes())  # one entry per recipe, long ones wrapped under it
    words = " ".join(out.split())
    for path in list_recipes().values():  # every description printed whole
        assert " ".join(describe(path).split()) in words


def test_descriptions_are_whole_sentences():
    for name, path in list_recipes().items():
        text = describe(path)
        assert text.endswith((".", "!", "?")) and "(issue" not in text, (name, text)
        assert len(text) > 30, (name, text)  # not a fragment of the header
