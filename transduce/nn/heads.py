"""Output heads: decoder features -> vocabulary logits, real values or quantiles."""

from __future__ import annotations

import torch
from torch import nn

from transduce.nn.dropout import Dropout


class VocabHead(nn.Module):
    """Dropout then a linear projection ``[..., F] -> [..., V]``; optionally tied weights.

    Tying shares the target embedding matrix with the projection (Press & Wolf 2017); it
    needs the feature size to equal the embedding size.
    """

    def __init__(self, in_size: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.proj = nn.Linear(in_size, vocab_size)

    def tie(self, embedding: nn.Embedding) -> None:
        if embedding.weight.shape != self.proj.weight.shape:
            raise ValueError(
                f"tie_embeddings needs the decoder's output size ({self.proj.in_features}) to "
                f"equal the target embedding size ({embedding.weight.shape[1]})"
            )
        self.proj.weight = embedding.weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(features))


class RegressionHead(nn.Module):
    """Decoder features ``[..., F]`` -> real outputs ``[..., D]`` (no activation)."""

    def __init__(self, in_size: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.proj = nn.Linear(in_size, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(features))


def quantile_levels(levels: tuple[float, ...]) -> list[float]:
    """The probability of each :class:`QuantileHead` output column: the median, then the
    lower and upper quantile of each interval level (percent), narrowest level first."""
    out = [0.5]
    for level in sorted(levels):
        out += [0.5 - level / 200, 0.5 + level / 200]
    return out


class QuantileHead(nn.Module):
    """Decoder features ``[..., F]`` -> ``[..., 1 + 2K]``: the median, then ``(lo_k, hi_k)``
    for K interval levels, narrowest first. Monotone by construction: each bound is the
    median minus (plus) a cumulative sum of softplus offsets, so ``lo_K <= ... <= lo_1 <=
    median <= hi_1 <= ... <= hi_K`` for any weights (the non-crossing construction of
    multi-quantile heads, e.g. Gasthaus et al. 2019's monotone spline quantiles)."""

    def __init__(self, in_size: int, n_levels: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = Dropout(dropout)
        self.proj = nn.Linear(in_size, 1 + 2 * n_levels)
        self.n_levels = n_levels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features [..., F]`` -> ``[..., 1 + 2K]`` (median, lo_1, hi_1, ..., lo_K, hi_K)."""
        out = self.proj(self.dropout(features))  # [..., 1 + 2K]
        median = out[..., :1]
        down = torch.cumsum(nn.functional.softplus(out[..., 1 : 1 + self.n_levels]), -1)
        up = torch.cumsum(nn.functional.softplus(out[..., 1 + self.n_levels :]), -1)
        pairs = torch.stack([median - down, median + up], -1)  # [..., K, 2]
        return torch.cat([median, pairs.flatten(-2)], -1)
