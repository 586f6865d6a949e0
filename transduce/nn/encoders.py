"""Recurrent encoder and the ``Memory`` it hands to every decoder."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from transduce.nn.embed import TokenEmbedding

RNN_CLASSES = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def _select(t: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if t is None else t.index_select(0, index)


class Memory(NamedTuple):
    """What the decoder reads of the source; all batch-first.

    outputs: ``[B, S, H]`` encoder outputs (both directions concatenated).
    mask:    ``[B, S]`` True at real source positions.
    final_h: ``[B, L, H]`` last hidden state of every encoder layer.
    final_c: ``[B, L, H]`` LSTM cell state, or None.
    keys:    ``[B, S, K]`` attention keys precomputed once per source, or None.
    """

    outputs: torch.Tensor
    mask: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor | None = None
    keys: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> Memory:
        """Reorder / repeat the batch dimension (beam search expands sources this way)."""
        return Memory(*(_select(t, index) for t in self))


class RNNEncoder(nn.Module):
    """Embedding + stacked (bi)directional RNN/GRU/LSTM over padded sources.

    Padding never enters the recurrence (packed sequences, or for an LSTM on CPU one fused
    call per distinct length), so each direction's final state is the state at the sentence's
    real end and a sentence encodes the same whatever it is batched with.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        hidden_size: int,
        cell: str = "gru",
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        spatial_dropout: bool = False,
        embed: nn.Module | None = None,  # the input embedding ([B, S, ...] -> [B, S, E])
    ):
        super().__init__()
        if embed is None:
            embed = TokenEmbedding(vocab_size, embed_size, embed_dropout, spatial_dropout)
        self.embed = embed
        self.rnn = RNN_CLASSES[cell](
            embed_size,
            hidden_size,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.layers = layers
        self.directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.directions

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """``src [B, S]`` ids, ``src_mask [B, S]`` -> :class:`Memory`."""
        emb = self.embed(src)  # [B, S, E]
        if emb.shape[0] == 0:
            return self._empty(emb, src_mask)
        # No padding (every forecasting window; text batches of one length): one plain call.
        # Packing would cost more than it saves: PyTorch's packed step loop slices its input
        # once per time step, and each slice's backward zero-fills an input-sized gradient,
        # O(S^2) per batch (a lookback of 240 trained 5x slower per step than 168).
        # On CPU only the LSTM has a fused (oneDNN) kernel, and it does not take packed
        # sequences; GRU/RNN run PyTorch's step loop either way, so one packed loop over the
        # whole batch beats one loop per length group.
        if bool(src_mask.all()):
            outputs, h, c = self._run(emb)
        elif emb.is_cuda or not isinstance(self.rnn, nn.LSTM):
            outputs, h, c = self._run_packed(emb, src_mask)
        else:
            outputs, h, c = self._run_grouped(emb, src_mask)
        return Memory(outputs, src_mask, self._merge(h), None if c is None else self._merge(c))

    def _empty(self, emb: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        final = emb.new_zeros(0, self.layers, self.output_size)
        lstm = isinstance(self.rnn, nn.LSTM)
        outputs = emb.new_zeros(0, emb.shape[1], self.output_size)
        return Memory(outputs, src_mask, final, final if lstm else None)

    def _run_packed(self, emb: torch.Tensor, src_mask: torch.Tensor):
        """Packed sequences: cuDNN runs them natively; on CPU, PyTorch's step loop shrinks the
        batch as sentences end."""
        lengths = src_mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(emb, lengths, batch_first=True, enforce_sorted=False)
        out, h, c = self._run(packed)
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=emb.shape[1])
        return outputs, h, c

    def _run(self, x):
        """The RNN on ``x`` (a tensor or a packed sequence) -> outputs, h, c (None but LSTM)."""
        out, final = self.rnn(x)
        h, c = final if isinstance(final, tuple) else (final, None)
        return out, h, c

    def _run_grouped(self, emb: torch.Tensor, src_mask: torch.Tensor):
        """One fused (oneDNN) call per distinct source length, on unpadded rows (LSTM on CPU).

        On CPU, a packed LSTM falls back to a slow per-time-step path; length-bucketed
        batches hold only a few distinct lengths, so this is exact and much faster.
        """
        lengths = src_mask.sum(1).clamp(min=1)
        width = emb.shape[1]
        rows, outs, hs, cs = [], [], [], []
        for n in lengths.unique().tolist():
            idx = (lengths == n).nonzero().squeeze(1)
            out, h, c = self._run(emb[idx, :n])  # out: [b, n, dirs * H]
            rows.append(idx)
            outs.append(F.pad(out, (0, 0, 0, width - n)))  # zeros at padded positions
            hs.append(h)
            cs.append(c)
        back = torch.argsort(torch.cat(rows))  # group order -> batch order
        outputs = torch.cat(outs).index_select(0, back)
        h = torch.cat(hs, 1).index_select(1, back)  # [L * dirs, B, H]
        c = None if cs[0] is None else torch.cat(cs, 1).index_select(1, back)
        return outputs, h, c

    def _merge(self, state: torch.Tensor) -> torch.Tensor:
        """``[L * dirs, B, H] -> [B, L, dirs * H]`` (directions side by side)."""
        batch = state.shape[1]
        state = state.view(self.layers, self.directions, batch, -1)  # [L, dirs, B, H]
        return state.permute(2, 0, 1, 3).reshape(batch, self.layers, -1)
