"""The array API's arguments checked by name before anything is built (a negative width
or a dropout of 2 had failed deep in torch, or not at all)."""

from __future__ import annotations

from typing import Any

import numpy as np


def count(name: str, value: Any, least: int) -> None:
    """A whole number of at least ``least``, refused by name otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name}: a whole number >= {least}, got {value!r}")


def check_args(
    input_dim: Any,
    output_dim: Any,
    output_length: Any,
    input_length: Any,
    hidden_dim: Any,
    embed_dim: Any,
    dropout: Any,
) -> None:
    """The sizes (positive whole numbers; ``hidden_dim``/``embed_dim`` 0 or None: the
    default; ``input_length`` None: any) and the dropout (a fraction in [0, 1))."""
    count("input_dim", input_dim, 1)
    count("output_dim", output_dim, 1)
    count("output_length", output_length, 1)
    if input_length is not None:
        count("input_length", input_length, 1)
    for name, value in (("hidden_dim", hidden_dim), ("embed_dim", embed_dim)):
        if value is not None and value != 0:
            count(name, value, 1)
    number = isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
    if not number or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: a fraction in [0, 1), got {dropout!r}")


def check_flags(bidirectional: Any, teacher_force: Any, seed: Any) -> None:
    """The two switches are booleans; the seed a whole number in [0, 2**32) (numpy's and
    torch's seeding both take it)."""
    if not isinstance(bidirectional, bool) or not isinstance(teacher_force, bool):
        raise ValueError("bidirectional and teacher_force: True or False")
    count("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"seed: below 2**32, got {seed!r}")
