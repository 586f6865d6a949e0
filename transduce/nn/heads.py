"""Output heads: decoder features -> vocabulary logits."""

from __future__ import annotations

import torch
from torch import nn


class VocabHead(nn.Module):
    """Dropout then a linear projection ``[..., F] -> [..., V]``; optionally tied weights.

    Tying shares the target embedding matrix with the projection (Press & Wolf 2017); it
    needs the feature size to equal the embedding size.
    """

    def __init__(self, in_size: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
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
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(in_size, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.dropout(features))
