"""Decoding strategies. They know only the step contract (ARCHITECTURE §2):
``model.encode``, ``model.init_state``, ``model.step``, ``model.head`` and ``State.select``.

The algorithms live in :mod:`transduce.inference.searchcore`, written once against a small array
interface; this module runs them on torch tensors (:class:`TorchOps`), and
:mod:`transduce.runtime` runs the same code on numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transduce.inference import searchcore as core
from transduce.inference import searchrules as rules
from transduce.inference.searchcore import Hypotheses, NBest
from transduce.inference.searchrules import length_penalty

__all__ = [
    "Hypotheses",
    "NBest",
    "beam_search",
    "block_repeated_ngrams",
    "filter_logits",
    "greedy",
    "length_limits",
    "length_penalty",
    "rollout",
    "sample",
]


class TorchOps:
    """The array interface of :mod:`transduce.inference.searchcore` on torch tensors."""

    @staticmethod
    def full(shape, value, kind: str, like=None):
        dtype = {"int": torch.long, "float": torch.float32, "bool": torch.bool}[kind]
        return torch.full(shape, value, dtype=dtype, device=None if like is None else like.device)

    @staticmethod
    def arange(n: int, like=None):
        return torch.arange(n, device=None if like is None else like.device)

    @staticmethod
    def tensor(values: list, kind: str, like=None):
        dtype = torch.long if kind == "int" else torch.float32
        return torch.tensor(values, dtype=dtype, device=None if like is None else like.device)

    @staticmethod
    def topk(x, k: int):
        return x.topk(k, dim=-1)

    @staticmethod
    def sort_desc(x):
        return x.sort(dim=-1, descending=True)

    @staticmethod
    def scatter(x, idx, value):
        return x.scatter(1, idx, value)

    @staticmethod
    def generator(seed: int | None, like=None):
        generator = torch.Generator(device=None if like is None else like.device)
        if seed is None:
            generator.seed()  # fresh entropy, leaving torch's global generator alone
        else:
            generator.manual_seed(seed)
        return generator

    log_softmax = staticmethod(lambda x: F.log_softmax(x, dim=-1))
    softmax = staticmethod(lambda x: torch.softmax(x, dim=-1))
    gather = staticmethod(lambda x, idx: x.gather(1, idx))
    rows = staticmethod(lambda x, idx: x.index_select(0, idx))
    cat = staticmethod(lambda xs, dim: torch.cat(xs, dim))
    stack = staticmethod(lambda xs, dim: torch.stack(xs, dim))
    stable_argsort = staticmethod(lambda x: x.argsort(dim=1, stable=True))
    nonzero = staticmethod(lambda x: x.nonzero().squeeze(1))
    argwhere = staticmethod(lambda x: x.nonzero())
    to_int = staticmethod(lambda x: x.long())
    to_float = staticmethod(lambda x: x.float())

    @staticmethod
    def to_numpy(x):
        """float32 on the host (a host array, as constrained search keeps, passes through)."""
        if isinstance(x, np.ndarray):
            return x.astype(np.float32, copy=False)
        return x.float().cpu().numpy()

    max = staticmethod(lambda x, dim: x.max(dim).values)
    argmax = staticmethod(lambda x: x.argmax(-1))
    repeat = staticmethod(lambda x, k: x.repeat_interleave(k))
    where = staticmethod(torch.where)
    windows = staticmethod(lambda h, n: h.unfold(1, n, 1))
    multinomial = staticmethod(lambda p, g: torch.multinomial(p, 1, generator=g).squeeze(1))


OPS = TorchOps()


def length_limits(
    src_mask: torch.Tensor, max_len: int, max_len_ratio: float | None = None
) -> torch.Tensor:
    """Per-sentence output limit ``[B]``: ``max_len``, or ``ceil(ratio * |src|) + 5`` capped."""
    return rules.length_limits(OPS, src_mask, max_len, max_len_ratio)


@torch.no_grad()
def greedy(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    max_len: int = 200,
    max_len_ratio: float | None = None,
    keep_attention: bool = True,
) -> Hypotheses:
    """Batched greedy decoding: the most probable token at every step."""
    return core.decode(OPS, model, src, src_mask, max_len, max_len_ratio, attention=keep_attention)


# ---------------------------------------------------------------------- beam search


def block_repeated_ngrams(logp: torch.Tensor, history: torch.Tensor, n: int) -> torch.Tensor:
    """Forbid tokens that would repeat an n-gram already in ``history`` (Paulus et al. 2018).

    logp ``[R, V]``, history ``[R, t]`` -> logp with -inf at forbidden (row, token) pairs.
    """
    return rules.block_repeated_ngrams(OPS, logp, history, n)


@torch.no_grad()
def beam_search(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    beam_size: int = 5,
    nbest: int = 1,
    max_len: int = 200,
    max_len_ratio: float | None = None,
    alpha: float = 0.0,
    normalize: bool = False,
    no_repeat_ngram: int = 0,
    keep_attention: bool = True,
) -> NBest:
    """Batched beam search: all sentences x beams advance as one tensor per step; sentences
    leave the batch once their ``nbest`` best finished hypotheses can no longer be beaten by
    a live one (``Beams.settled``), or at their length limit. Ranking: log-probability /
    GNMT length penalty (``alpha``), or / length (``normalize``). With ``beam_size=1`` this
    is exactly :func:`greedy`. The algorithm is :func:`transduce.inference.searchcore.beam_search`,
    shared with the PyTorch-free runtime.
    """
    options = dict(
        beam=beam_size,
        nbest=nbest,
        alpha=alpha,
        normalize=normalize,
        no_repeat_ngram=no_repeat_ngram,
        attention=keep_attention,
    )
    return core.beam_search(OPS, model, src, src_mask, max_len, max_len_ratio, **options)


# ---------------------------------------------------------------------- sampling


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the ``top_k`` largest logits and the smallest set whose probability reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2020); the rest become -inf. ``[R, V]``."""
    return rules.filter_logits(OPS, logits, top_k, top_p)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    max_len: int = 200,
    max_len_ratio: float | None = None,
) -> Hypotheses:
    """Ancestral sampling, ``num_samples`` per sentence: rows ``i * num_samples + j``.

    Scores are log-probabilities under the model itself (before temperature and
    filtering). ``temperature=0`` picks the argmax, i.e. greedy decoding.
    """
    options = dict(nbest=num_samples, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    return core.sample(OPS, model, src, src_mask, max_len, max_len_ratio, **options)


def rollout(
    model,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    tgt_in: torch.Tensor,
    out_dim: int,
    teacher_ratio: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Autoregressive roll-out of a real-valued model (greedy decoding for values).

    ``tgt_in [B, T, D + C]``: row 0's first ``D`` values start the roll-out; columns ``D:``
    are known exogenous features of each step; the first ``D`` of later rows are the gold
    previous outputs, fed instead of the model's own with probability ``teacher_ratio``
    (scheduled sampling; 0 at inference). Returns outputs ``[B, T, D]`` and attention
    ``[B, T, S]`` (or None).
    """
    mix = None
    if teacher_ratio > 0:

        def mix(own: torch.Tensor, t: int) -> torch.Tensor:
            gold = tgt_in[:, t + 1, :out_dim]
            coin = torch.rand(own.shape[0], 1, generator=generator).to(own.device)
            return torch.where(coin < teacher_ratio, gold, own)

    return core.rollout(OPS, model, src, src_mask, tgt_in, out_dim, mix)
