"""The recipe configs shipped inside the package (``transduce/configs``, the repository's
``configs/`` folder), so ``transduce train NAME`` works after a plain ``pip install``.

    transduce recipes                           # names and one-line descriptions
    transduce train tatoeba_char_ell --out runs/ell
"""

from __future__ import annotations

import argparse
import re
import shutil
import textwrap
from pathlib import Path

from transduce.config import ConfigError

RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs"


def list_recipes() -> dict[str, Path]:
    """Recipe name (the file's stem) -> path of its YAML, sorted by name."""
    if not RECIPE_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(RECIPE_DIR.glob("*.yaml"))}


def describe(path: Path) -> str:
    """The first sentence of the recipe's header comment (what it trains), whole even when
    it spans several comment lines; the header's command lines (``#   transduce ...``) and
    anything after them are not part of it."""
    prose = []
    for line in path.read_text(encoding="utf-8").splitlines():
        body = line[1:] if line.startswith("#") else None
        if body is None or not body.strip() or body.startswith("   "):
            break
        prose.append(body.strip())
    text = re.sub(r"\s*\(issue:[^)]*\)", "", " ".join(prose))
    # a sentence ends at . ! or ? followed by a space or the end ("11.3M", "0.005" do not;
    # nor "et al.", "e.g.", "i.e.")
    first = re.match(r".*?(?<!\bal)(?<!\be\.g)(?<!\bi\.e)[.!?](?=\s|$)", text)
    return first.group(0) if first else text


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
    columns = max(shutil.get_terminal_size().columns, width + 40)
    for name, path in recipes.items():
        # long descriptions wrap under themselves, never cut
        indent = " " * (width + 2)
        text = textwrap.fill(
            describe(path),
            columns,
            initial_indent=f"{name:<{width}}  ",
            subsequent_indent=indent,
            break_on_hyphens=False,
        )
        print(text)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "recipes",
        help="list the shipped recipe configs (use a name with `transduce train NAME`)",
        description="List the recipe configs shipped with transduce, one per line.",
    )
    p.set_defaults(func=recipes_command)
