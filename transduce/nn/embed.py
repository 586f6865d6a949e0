"""Token embeddings with the two dropout flavours the seeds use."""

from __future__ import annotations

import torch
from torch import nn

from transduce.data.vocab import PAD_ID
from transduce.nn.dropout import Dropout


class ChannelDropout(nn.Module):
    """Drop whole feature channels of ``[B, T, C]`` for every time step (SpatialDropout1D).

    Plain dropout on embeddings zeroes single numbers; this zeroes a channel for the whole
    sequence, which regularises recurrent models better (Gal & Ghahramani 2016 use the same
    time-shared masks).
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], 1, x.shape[-1]).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class TokenEmbedding(nn.Module):
    """``ids [B, T] -> [B, T, E]``; id 0 (``<pad>``) embeds to zeros and gets no gradient."""

    def __init__(self, vocab_size: int, size: int, dropout: float = 0.0, spatial: bool = False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, size, padding_idx=PAD_ID)
        self.dropout = ChannelDropout(dropout) if spatial else Dropout(dropout)
        self.size = size

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embed(ids))


class ValueEmbedding(nn.Module):
    """Real-valued inputs ``[B, T, F] -> [B, T, E]``: a linear map, in place of the lookup
    table, so real sequences run through the same encoders and decoders as tokens."""

    def __init__(self, features: int, size: int, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(features, size)
        self.dropout = Dropout(dropout)
        self.features, self.size = features, size

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(values))
