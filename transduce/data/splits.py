"""Train/validation splits of a corpus's rows: by unique source (no source on both sides)
or Keras-style by the tail."""

from __future__ import annotations

import random
from collections.abc import Sequence


def _check_fraction(valid_fraction: float) -> None:
    if not 0.0 <= valid_fraction < 1.0:  # also rejects NaN
        raise ValueError(f"valid_fraction must be in [0, 1); got {valid_fraction!r}")


def split_by_source(
    src: Sequence[str], valid_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Split rows into (train, valid) indices so that no source sentence is on both sides.

    Tatoeba repeats a source with several translations; splitting rows at random would
    leak those sources into validation. Unique sources are shuffled with
    ``random.Random(seed)`` and ``round(valid_fraction * n_unique)`` of them (at least one,
    and never all) go to validation. Both index lists are sorted ascending.
    """
    _check_fraction(valid_fraction)
    unique = sorted(set(src))  # sorted: the split depends on the set of sources, not row order
    random.Random(seed).shuffle(unique)
    n_valid = round(valid_fraction * len(unique))
    if valid_fraction > 0 and len(unique) > 1:
        n_valid = min(max(n_valid, 1), len(unique) - 1)
    elif len(unique) <= 1:
        n_valid = 0
    valid_sources = set(unique[:n_valid])
    train = [i for i, s in enumerate(src) if s not in valid_sources]
    valid = [i for i, s in enumerate(src) if s in valid_sources]
    return train, valid


def split_tail(n: int, valid_fraction: float) -> tuple[list[int], list[int]]:
    """The last `valid_fraction` of `n` rows as validation, as Keras's ``validation_split``.

    Keras puts the first ``int(n * (1 - valid_fraction))`` rows in training and refuses a
    split that leaves either side empty; so does this.
    """
    _check_fraction(valid_fraction)
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    split_at = int(n * (1.0 - valid_fraction))
    if valid_fraction > 0 and not 0 < split_at < n:
        raise ValueError(
            f"{n} rows cannot be split into training and validation with "
            f"valid_fraction={valid_fraction}"
        )
    return list(range(split_at)), list(range(split_at, n))
