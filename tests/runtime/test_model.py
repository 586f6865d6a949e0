"""The runtime's arrays: a memory shared by a source's rows reads, row for row, what a
copied memory reads, whatever rows the search selects."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.runtime.model import Arrays, SharedArrays


def _rows(memory: SharedArrays, n: int) -> np.ndarray:
    """The memory as the search sees it: one row per search row."""
    return memory.arrays["x"][np.arange(n) // memory.rows_per]


@pytest.mark.parametrize("seed", range(5))
def test_shared_memory_reads_like_a_copied_one(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    shared, plain = SharedArrays({"x": x}), Arrays({"x": x})
    k = 4
    beams = np.repeat(np.arange(6), k)  # beam search's first step: k rows per source
    keeps = [np.array([0, 2, 3, 5]), np.array([1, 3]), np.array([0])]
    steps = [beams, *[(keep[:, None] * k + np.arange(k)).reshape(-1) for keep in keeps]]
    steps.append(rng.integers(0, k, 5))  # any other selection: copied row by row
    for index in steps:
        shared, plain = shared.select(index), plain.select(index)
        n = len(index)
        np.testing.assert_array_equal(_rows(shared, n), plain.arrays["x"])


def test_beam_copies_are_free_and_kept_sentences_copy_one_row_each():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    shared = SharedArrays({"x": x}).select(np.repeat(np.arange(4), 5))
    assert shared.arrays["x"] is x and shared.rows_per == 5  # no copy at all
    kept = shared.select((np.array([1, 3])[:, None] * 5 + np.arange(5)).reshape(-1))
    assert kept.rows_per == 5 and kept.arrays["x"].tolist() == [x[1].tolist(), x[3].tolist()]
    greedy = SharedArrays({"x": x}).select(np.array([0, 2]))
    assert greedy.rows_per == 1 and greedy.arrays["x"].shape == (2, 3)
