"""``Seq2SeqModel`` = encoder + decoder + head: the step contract search and training rely on
(ARCHITECTURE §3). The presets that fill it are in :mod:`transduce.nn.presets`."""

from __future__ import annotations

import torch
from torch import nn

from transduce.nn.decoders import DecoderState
from transduce.nn.encoders import Memory


def reverse_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each row's real tokens in place of ``[B, S, ...]``, leaving padding at the end."""
    lengths = mask.sum(1, keepdim=True)  # [B, 1]
    pos = torch.arange(x.shape[1], device=x.device)[None, :]  # [1, S]
    idx = torch.where(pos < lengths, lengths - 1 - pos, pos)  # [B, S]
    if x.dim() == 3:
        idx = idx[:, :, None].expand(-1, -1, x.shape[2])
    return x.gather(1, idx)


class Seq2SeqModel(nn.Module):
    """The step contract search relies on: ``encode``, ``init_state``, ``step``, ``head``."""

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, reverse_source: bool
    ):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.reverse_source = reverse_source

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """``src [B, S]`` -> Memory with attention keys ready."""
        if self.reverse_source:
            # Sutskever et al. 2014: read the source backwards. Outputs are put back in source
            # order so attention weights line up with the tokens as written.
            memory = self.encoder(reverse_padded(src, src_mask), src_mask)
            memory = memory._replace(outputs=reverse_padded(memory.outputs, src_mask))
        else:
            memory = self.encoder(src, src_mask)
        return self.decoder.prepare(memory)

    def init_state(self, memory: Memory) -> DecoderState:
        return self.decoder.init_state(memory)

    def step(
        self, prev: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        return self.decoder.step(prev, state, memory)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced logits ``[B, T, V]`` and attention ``[B, T, S]`` (or None)."""
        memory = self.encode(src, src_mask)
        features, attn = self.decoder(tgt_in, memory, self.init_state(memory))
        return self.head(features), attn


Seq2Seq = Seq2SeqModel  # the torch module's earlier name (the array API's is estimators.Seq2Seq)
