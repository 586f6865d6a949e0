"""The array interface of :mod:`transduce.inference.searchcore` on numpy arrays: what the
PyTorch-free
runtime (:mod:`transduce.runtime`) searches with. The torch one is
:class:`transduce.inference.search.TorchOps`. This module must not import torch.
"""

from __future__ import annotations

import numpy as np


class NumpyOps:
    """The array interface on numpy (the torch one is ``transduce.inference.search.TorchOps``).
    ``topk``: an onnxruntime session of one TopK node (``x``, ``k`` -> values, indices),
    faster than numpy's partition on whole-vocabulary rows."""

    def __init__(self, topk=None):
        self._topk = topk

    @staticmethod
    def full(shape, value, kind: str, like=None):
        dtype = {"int": np.int64, "float": np.float32, "bool": np.bool_}[kind]
        return np.full(shape, value, dtype=dtype)

    @staticmethod
    def arange(n: int, like=None):
        return np.arange(n, dtype=np.int64)

    @staticmethod
    def tensor(values: list, kind: str, like=None):
        return np.asarray(values, dtype=np.int64 if kind == "int" else np.float32)

    @staticmethod
    def log_softmax(x):
        x = x.astype(np.float32, copy=False)
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    @staticmethod
    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def topk(self, x, k: int):
        """Largest ``k`` along the last axis, sorted, ties to the lower index."""
        if self._topk is not None and x.ndim == 2 and x.shape[-1] > 256:
            feed = {"x": np.ascontiguousarray(x, dtype=np.float32), "k": np.array([k])}
            values, idx = self._topk.run(None, feed)
            return values, idx
        idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]  # ties: lower index first
        return np.take_along_axis(x, idx, -1), idx

    @staticmethod
    def sort_desc(x):
        idx = np.argsort(-x, axis=-1, kind="stable")
        return np.take_along_axis(x, idx, -1), idx

    gather = staticmethod(lambda x, idx: np.take_along_axis(x, idx, 1))
    rows = staticmethod(lambda x, idx: x[idx])
    cat = staticmethod(lambda xs, dim: np.concatenate(xs, dim))
    stack = staticmethod(lambda xs, dim: np.stack(xs, dim))
    stable_argsort = staticmethod(lambda x: np.argsort(x, axis=1, kind="stable"))
    nonzero = staticmethod(lambda x: np.flatnonzero(x))
    argwhere = staticmethod(lambda x: np.argwhere(x))
    to_int = staticmethod(lambda x: x.astype(np.int64))
    to_float = staticmethod(lambda x: x.astype(np.float32))
    to_numpy = staticmethod(lambda x: np.asarray(x, dtype=np.float32))
    max = staticmethod(lambda x, dim: x.max(dim))
    argmax = staticmethod(lambda x: x.argmax(-1))
    repeat = staticmethod(lambda x, k: np.repeat(x, k))
    where = staticmethod(np.where)
    windows = staticmethod(lambda h, n: np.lib.stride_tricks.sliding_window_view(h, n, axis=1))

    @staticmethod
    def scatter(x, idx, value):
        """``x`` with ``value`` at ``(row, idx[row, j])``; ``value`` a number or an array."""
        out = x.copy()
        np.put_along_axis(out, idx, value, 1)
        return out

    @staticmethod
    def generator(seed: int | None, like=None):
        return np.random.default_rng(seed)

    @staticmethod
    def multinomial(probs, generator):
        """One draw per row of ``probs [R, V]`` (inverse CDF on a uniform number)."""
        cdf = probs.astype(np.float64).cumsum(-1)
        u = generator.random(probs.shape[0]) * cdf[:, -1]
        return np.minimum((cdf < u[:, None]).sum(-1), probs.shape[1] - 1).astype(np.int64)
