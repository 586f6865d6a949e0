"""The recipe configs shipped inside the package (``transduce/configs``, the repository's
``configs/`` folder), so ``transduce train NAME`` works after a plain ``pip install``.

    transduce recipes                           # names and one-line descriptions
    transduce train tatoeba_char_ell --out runs/ell
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transduce.config import ConfigError

RECIPE_DIR = Path(__file__).resolve().parent / "configs"


def list_recipes() -> dict[str, Path]:
    """Recipe name (the file's stem) -> path of its YAML, sorted by name."""
    if not RECIPE_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(RECIPE_DIR.glob("*.yaml"))}


def describe(path: Path) -> str:
    """The first line of the recipe's header comment (what it trains)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def recipe_path(name_or_path: str) -> Path:
    """``name_or_path`` itself when that file exists, else the shipped recipe of that name
    (``tatoeba_char_ell`` or ``tatoeba_char_ell.yaml``)."""
    path = Path(name_or_path)
    if path.exists():
        return path
    recipes = list_recipes()
    stem = path.name.removesuffix(".yaml").removesuffix(".yml")
    if stem in recipes and (path.parent == Path(".") or path.parent.name == "configs"):
        return recipes[stem]  # a name, or configs/NAME.yaml outside a checkout
    if path.suffix or path.parent != Path("."):
        return path  # a file name: the config loader says it is not found
    known = ", ".join(recipes) or "none installed"
    raise ConfigError(f"{name_or_path}: no such config file or recipe (recipes: {known})")


def recipes_command(args: argparse.Namespace) -> None:
    recipes = list_recipes()
    width = max((len(name) for name in recipes), default=0)
    for name, path in recipes.items():
        print(f"{name:<{width}}  {describe(path)}")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "recipes",
        help="list the shipped recipe configs (use a name with `transduce train NAME`)",
        description="List the recipe configs shipped with transduce, one per line.",
    )
    p.set_defaults(func=recipes_command)
