"""transduce.inference.searchcore: the numpy array interface does what the torch one does, so the
one
search gives the same results on both; the module imports no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID
from transduce.inference import searchcore as core
from transduce.inference import searchrules as rules
from transduce.inference.numpy_ops import NumpyOps
from transduce.inference.search import TorchOps

NP, TO = NumpyOps(), TorchOps()


def test_special_ids_are_the_vocabularys():
    assert (core.BOS_ID, core.EOS_ID, core.PAD_ID) == (BOS_ID, EOS_ID, PAD_ID)


@pytest.mark.parametrize("k", [1, 3, 10])
def test_topk_agrees_with_torch(k):
    x = np.random.default_rng(0).standard_normal((6, 10)).astype(np.float32)
    x[0, :4] = 1.0  # ties keep the lower index first
    values, idx = NP.topk(x, k)
    ref_v, ref_i = TO.topk(torch.from_numpy(x), k)
    np.testing.assert_array_equal(values, ref_v.numpy())
    assert idx[1:].tolist() == ref_i[1:].tolist()
    v, i = values[0].tolist(), idx[0].tolist()
    assert all(v[r] > v[r + 1] or (v[r] == v[r + 1] and i[r] < i[r + 1]) for r in range(k - 1))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_ngram_blocking_agrees_with_torch(n):
    rng = np.random.default_rng(n)
    history = rng.integers(4, 8, (5, 7))
    logp = rng.standard_normal((5, 9)).astype(np.float32)
    ours = rules.block_repeated_ngrams(NP, logp, history, n)
    ref = rules.block_repeated_ngrams(TO, torch.from_numpy(logp), torch.from_numpy(history), n)
    np.testing.assert_array_equal(ours, ref.numpy())


@pytest.mark.parametrize("top_k,top_p", [(3, 1.0), (0, 0.7), (4, 0.5)])
def test_filter_logits_agrees_with_torch(top_k, top_p):
    logits = np.random.default_rng(3).standard_normal((4, 12)).astype(np.float32)
    ours = rules.filter_logits(NP, logits, top_k, top_p)
    ref = rules.filter_logits(TO, torch.from_numpy(logits), top_k, top_p)
    np.testing.assert_allclose(ours, ref.numpy())


def test_log_softmax_and_sampling():
    x = np.random.default_rng(4).standard_normal((3, 6)).astype(np.float32)
    ref = torch.log_softmax(torch.from_numpy(x), -1).numpy()
    np.testing.assert_allclose(NP.log_softmax(x), ref, atol=1e-6)
    probs = np.zeros((2, 5), dtype=np.float32)
    probs[0, 3] = probs[1, 0] = 1.0  # one certain outcome per row
    assert NP.multinomial(probs, NP.generator(0)).tolist() == [3, 0]


def test_output_limits_rule():
    assert rules.output_limits([1, 25, 100], 200, 1.2) == [7, 35, 125]
    assert rules.output_limits([100], 50, 1.2) == [50] and rules.output_limits([3], 9, None) == [9]


def test_an_absurd_ratio_is_the_absolute_limit():
    """A config's max_len_ratio of 1e308 overflowed to inf (OverflowError in ceil)."""
    assert rules.output_limits([0, 1, 7], 200, 1e308) == [5, 200, 200]


def test_searchcore_imports_no_torch():
    code = "import sys, transduce.inference.searchcore; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
