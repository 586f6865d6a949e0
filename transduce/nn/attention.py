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

    scores ``[B, T, S]``, mask ``[B, S]`` or ``[B, T, S]`` (True = may attend),
    values ``[B, S, H]`` -> context ``[B, T, H]``, weights ``[B, T, S]`` (exactly 0 where
    masked). A row with no allowed position (a source all padding) attends nowhere: zero
    weights and a zero context, where the softmax of only ``-inf`` gave NaN.
    """
    allowed = mask[:, None, :] if mask.dim() == 2 else mask
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).masked_fill(~allowed, 0.0)
    weights = weights.to(values.dtype)
    return torch.bmm(weights, values), weights


class LocalWindow(nn.Module):
    """Luong, Pham & Manning 2015, section 3.2: attend only to ``[p_t - D, p_t + D]``.

    ``local-m`` (monotonic) sets p_t = t. ``local-p`` (predictive) learns
    p_t = S * sigmoid(v_p^T tanh(W_p h_t)) and favours positions near p_t with a Gaussian of
    sigma = D / 2. The paper multiplies the window softmax by the Gaussian; here the Gaussian
    enters as a log-bias before the softmax, so the weights still sum to 1 (same shape of
    preference, normalised). S is each sentence's own length minus one, so p_t stays on a
    real token.
    """

    def __init__(self, kind: str, width: int, query_size: int):
        super().__init__()
        if kind not in ("local-m", "local-p"):
            raise ValueError(f"unknown attention window {kind!r} (global, local-m, local-p)")
        if width < 1:
            raise ValueError(f"attention width D must be at least 1, got {width}")
        self.kind, self.width = kind, width
        if kind == "local-p":
            self.position = nn.Sequential(
                nn.Linear(query_size, query_size), nn.Tanh(), nn.Linear(query_size, 1)
            )

    def forward(
        self, query: torch.Tensor, steps: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query ``[B, T, H]``, target positions ``steps [B, T]``, source mask ``[B, S]``
        -> score bias ``[B, T, S]`` and the allowed positions ``[B, T, S]``."""
        last = (mask.sum(1) - 1).clamp(min=0).to(query.dtype)[:, None]  # [B, 1]
        if self.kind == "local-m":
            center = torch.minimum(steps.to(query.dtype), last)  # [B, T]
        else:
            center = last * torch.sigmoid(self.position(query).squeeze(-1))  # [B, T]
        pos = torch.arange(mask.shape[1], device=mask.device, dtype=query.dtype)
        dist = pos[None, None, :] - center[:, :, None]  # [B, T, S]
        allowed = (dist.abs() <= self.width) & mask[:, None, :]
        if self.kind == "local-m":
            return torch.zeros_like(dist), allowed
        sigma = self.width / 2
        return -(dist**2) / (2 * sigma**2), allowed


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
