"""Attention: small scorers over one masked-softmax core.

A scorer turns memory values into keys once per source (``prepare``) and scores queries
against them (``score``). :func:`attend` does the masking, the softmax and the weighted
sum for every scorer.
"""

from __future__ import annotations

import torch
from torch import nn


def attend(
    scores: torch.Tensor, mask: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked softmax and context.

    scores ``[B, T, S]``, mask ``[B, S]`` (True = real), values ``[B, S, H]``
    -> context ``[B, T, H]``, weights ``[B, T, S]`` (exactly 0 at masked positions).
    """
    scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).to(values.dtype)
    return torch.bmm(weights, values), weights


class DotScorer(nn.Module):
    """Luong et al. 2015, eq. 8 ``dot``: score = h_t . h_s."""

    def prepare(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))  # [B, T, S]


class GeneralScorer(DotScorer):
    """Luong et al. 2015, eq. 8 ``general``: score = h_t^T W_a h_s (W_a h_s precomputed)."""

    def __init__(self, query_size: int, value_size: int):
        super().__init__()
        self.proj = nn.Linear(value_size, query_size, bias=False)

    def prepare(self, values: torch.Tensor) -> torch.Tensor:
        return self.proj(values)  # [B, S, Hq]


class AdditiveScorer(nn.Module):
    """Bahdanau et al. 2015 (Luong's ``concat``): score = v^T tanh(W q + U h_s)."""

    def __init__(self, query_size: int, value_size: int, size: int):
        super().__init__()
        self.key_proj = nn.Linear(value_size, size, bias=False)
        self.query_proj = nn.Linear(query_size, size, bias=True)
        self.v = nn.Linear(size, 1, bias=False)

    def prepare(self, values: torch.Tensor) -> torch.Tensor:
        return self.key_proj(values)  # [B, S, A]

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query_proj(query)  # [B, T, A]
        return self.v(torch.tanh(q[:, :, None, :] + keys[:, None, :, :])).squeeze(-1)


def build_scorer(kind: str, query_size: int, value_size: int, size: int | None) -> nn.Module:
    if kind == "dot":
        if query_size != value_size:
            raise ValueError(
                f"dot attention needs equal sizes: decoder {query_size} vs encoder {value_size}"
                " (use score: general)"
            )
        return DotScorer()
    if kind == "general":
        return GeneralScorer(query_size, value_size)
    if kind in ("concat", "additive"):
        return AdditiveScorer(query_size, value_size, size or query_size)
    raise ValueError(f"unknown attention score {kind!r}")
