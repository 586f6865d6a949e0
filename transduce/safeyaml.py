"""YAML read within bounds: ``yaml.safe_load`` that refuses alias bombs and deep nesting.

PyYAML's safe loader still expands aliases (a 426-byte document can stand for a billion
items) and composes recursively (500 nested levels end in RecursionError); configs,
``--set`` values and record manifests are read through :func:`load_yaml` instead.
"""

from __future__ import annotations

from typing import Any

import yaml

# Bounds of a YAML document (configs, --set values, manifests): a config is a few hundred
# items, so these only stop aliases that expand exponentially ("billion laughs") and deep
# nesting.
MAX_YAML_ITEMS = 100_000
MAX_YAML_DEPTH = 64


class YAMLTooLarge(yaml.YAMLError):
    """A document over the bounds above."""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer stops at MAX_YAML_DEPTH levels (PyYAML's composer is
    recursive: 500 levels end in RecursionError)."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise YAMLTooLarge(f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_items(node: yaml.Node) -> int:
    """Items the document has once every alias is expanded (shared nodes counted each
    time they are used), stopping above MAX_YAML_ITEMS."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            if sizes[id(n)] < 0:
                raise YAMLTooLarge("an alias refers to the node that contains it")
            return sizes[id(n)]
        sizes[id(n)] = -1
        total = 1
        children = n.value if isinstance(n, yaml.SequenceNode) else []
        if isinstance(n, yaml.MappingNode):
            children = [c for pair in n.value for c in pair]
            _refuse_duplicate_keys(n)
        for child in children:
            total += size(child)
            if total > MAX_YAML_ITEMS:
                raise YAMLTooLarge(f"expands to over {MAX_YAML_ITEMS:,} items (aliases)")
        sizes[id(n)] = total
        return total

    return size(node)


def _refuse_duplicate_keys(mapping: yaml.MappingNode) -> None:
    """A key given twice in one mapping (``train:`` ... ``train:``): PyYAML keeps the last
    without a word, and half a config is silently gone."""
    seen: set[str] = set()
    for key, _ in mapping.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key.value[:40]!r} appears twice", key.start_mark
                )
            seen.add(key.value)


def compose_yaml(text: str) -> yaml.Node | None:
    """The node graph of ``text`` within MAX_YAML_DEPTH and MAX_YAML_ITEMS."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _expanded_items(node)
        return node
    finally:
        loader.dispose()


def load_yaml(text: str, where: str = "<yaml>") -> Any:
    """``yaml.safe_load`` within MAX_YAML_DEPTH and MAX_YAML_ITEMS: a 426-byte alias bomb
    is refused after composing a few dozen nodes, before anything is built from it."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_items(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def one_line(err: yaml.YAMLError) -> str:
    """A YAML error on one line: its problem and where (``line 3, column 5``)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem
