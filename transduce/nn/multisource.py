"""Several source fields (QA: question and document) fused before decoding.

The fields arrive packed in one id sequence, ``q1 .. qm <sep> d1 .. dn`` (see
``transduce/data/records.py``), so batches, the trainer and search see an ordinary
``src [B, S]`` and keep the step contract (ARCHITECTURE §2). :class:`MultiSourceEncoder`
cuts the packed row into its fields, encodes each with its own encoder (or one shared
encoder), and writes the outputs back at the fields' packed positions: memory position
``s`` is source token ``s``, so attention weights line up with the packed tokens (plots,
``--format jsonl``), and ``<sep>`` positions are masked out.

Fusion modes (``model.fusion.mode``):

``concat_time``   one memory, the fields one after the other in time, plus a learned
                  field-marker embedding per field; attention reads all of it (the "flat"
                  combination of Libovický & Helcl 2017). Initial state: mean of the fields'
                  final states.
``concat_state``  the fields' final states concatenated and projected,
                  ``h = tanh(W [h_1; ...; h_k])`` (Zoph & Knight 2016, "basic"): the seeds'
                  "concatenate the two encodings", for decoders that start from (or only
                  read) the final state. Attention, if any, reads the plain packed memory.
``gated``         attention over each field separately, the contexts mixed by a gate
                  ``g = softmax(W_g [q; c_1; ...; c_k])`` computed from the decoder query
                  (the hierarchical combination of Libovický & Helcl 2017).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from transduce.config import ModelConfig
from transduce.data.records import SEP_ID
from transduce.data.vocab import PAD_ID
from transduce.nn.attention import attend
from transduce.nn.decoders import RNNDecoder
from transduce.nn.encoders import _select
from transduce.nn.presets import build_encoder, build_parts
from transduce.nn.seq2seq import Seq2Seq


class MultiMemory(NamedTuple):
    """:class:`~transduce.nn.encoders.Memory` plus the field of every position.

    outputs ``[B, S, H]``, mask ``[B, S]`` (False at padding and ``<sep>``),
    final_h / final_c ``[B, L, H]``, keys ``[B, S, K]`` or None,
    fields ``[B, S]`` field index of each position, -1 at padding and ``<sep>``.
    """

    outputs: torch.Tensor
    mask: torch.Tensor
    final_h: torch.Tensor
    final_c: torch.Tensor | None = None
    keys: torch.Tensor | None = None
    fields: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> MultiMemory:
        return MultiMemory(*(_select(t, index) for t in self))


def field_ids(src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
    """``[B, S]`` field index of each packed token: the number of ``<sep>`` before it;
    -1 at padding and at the separators themselves."""
    is_sep = src == SEP_ID
    field = is_sep.long().cumsum(1)  # [B, S]
    return torch.where(src_mask & ~is_sep, field, torch.full_like(field, -1))


def unpack_field(src: torch.Tensor, fields: torch.Tensor, k: int, width: int | None = None):
    """Field ``k`` of every row as its own padded batch: (ids ``[B, W]``, mask ``[B, W]``,
    in-field index of each packed position ``[B, S]``, which positions are field ``k``).
    ``W``: the longest field, or ``width`` (fixed: shapes stay data-independent, as the
    ONNX export needs; then the tokens are scattered to their places instead of sorted)."""
    sel = fields == k  # [B, S]
    n = sel.sum(1)  # [B] tokens of field k per row
    position = sel.long().cumsum(1) - 1  # [B, S] in-field index of field k's tokens
    if width is None:
        width = max(int(n.max()) if n.numel() else 0, 1)
        # Stable sort puts the field's positions first, in order.
        order = torch.argsort((~sel).long(), dim=1, stable=True)[:, :width]  # [B, W]
        ids = src.gather(1, order)
    else:
        # Other positions land in a spare last column, dropped after the scatter.
        dest = torch.where(sel, position, torch.full_like(position, width))  # [B, S]
        ids = src.new_full((src.shape[0], width + 1), PAD_ID).scatter(1, dest, src)[:, :width]
    mask = torch.arange(width, device=src.device)[None, :] < n[:, None]  # [B, W]
    ids = ids.masked_fill(~mask, PAD_ID)
    return ids, mask, position.clamp(0, width - 1), sel


class MultiSourceEncoder(nn.Module):
    """Packed ``src [B, S]`` -> :class:`MultiMemory` (see the module docstring)."""

    def __init__(self, encoders: list[nn.Module], sources: int, mode: str):
        super().__init__()
        if len(encoders) not in (1, sources):
            raise ValueError(f"need 1 shared encoder or {sources}, got {len(encoders)}")
        self.encoders = nn.ModuleList(encoders)
        self.sources, self.mode = sources, mode
        self.full_width = False  # True: fields padded to the packed width (ONNX export)
        size = self.output_size = encoders[0].output_size
        self.markers = nn.Embedding(sources, size) if mode == "concat_time" else None
        if mode == "concat_state":
            self.state_h = nn.Linear(sources * size, size)
            self.state_c = nn.Linear(sources * size, size)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> MultiMemory:
        """``src [B, S]`` packed ids, ``src_mask [B, S]`` -> MultiMemory over ``S``."""
        fields = field_ids(src, src_mask)  # [B, S]
        outputs, finals_h, finals_c = None, [], []
        for k in range(self.sources):
            width = src.shape[1] if self.full_width else None
            ids, mask, within, sel = unpack_field(src, fields, k, width)
            mem = self.encoders[k % len(self.encoders)](ids, mask)  # outputs [B, W, H]
            index = within[:, :, None].expand(-1, -1, mem.outputs.shape[-1])  # [B, S, H]
            placed = mem.outputs.gather(1, index)  # field k's outputs at packed positions
            outputs = placed if outputs is None else outputs
            outputs = torch.where(sel[:, :, None], placed, outputs)
            finals_h.append(mem.final_h)
            finals_c.append(mem.final_c)
        real = fields >= 0
        outputs = outputs * real[:, :, None]  # zeros at <sep> and padding
        if self.markers is not None:
            outputs = outputs + self.markers(fields.clamp(min=0)) * real[:, :, None]
        final_h, final_c = self._fuse_states(finals_h, finals_c)
        return MultiMemory(outputs, real, final_h, final_c, None, fields)

    def _fuse_states(self, hs: list[torch.Tensor], cs: list[torch.Tensor | None]):
        """Per-field final states ``[B, L, H]`` -> one ``[B, L, H]`` (and LSTM cells)."""
        lstm = cs[0] is not None
        if self.mode == "concat_state":
            h = torch.tanh(self.state_h(torch.cat(hs, -1)))  # [B, L, k*H] -> [B, L, H]
            return h, self.state_c(torch.cat(cs, -1)) if lstm else None
        return torch.stack(hs).mean(0), torch.stack(cs).mean(0) if lstm else None


class GatedRNNDecoder(RNNDecoder):
    """:class:`RNNDecoder` whose attention reads each field on its own and mixes the
    contexts with a gate conditioned on the query (``gated`` fusion). The weights it
    returns, ``sum_k g_k a_k``, still sum to one over the packed source."""

    def __init__(self, vocab_size: int, memory_size: int, *args, sources: int, **kwargs):
        super().__init__(vocab_size, memory_size, *args, **kwargs)
        if self.scorer is None:
            raise ValueError("gated fusion needs a preset with attention (bahdanau, luong)")
        self.sources = sources
        self.gate = nn.Linear(self.hidden_size + sources * memory_size, sources)

    def _attend(self, query: torch.Tensor, steps: torch.Tensor, memory: MultiMemory):
        """query ``[B, T, H]`` -> context ``[B, T, M]``, weights ``[B, T, S]``."""
        scores = self.scorer.score(query, memory.keys)  # [B, T, S]
        contexts, weights = [], []
        for k in range(self.sources):
            allowed = memory.fields == k  # [B, S]
            present = allowed.any(1, keepdim=True)  # [B, 1] a field may be empty
            ctx, w = attend(scores, allowed | ~present, memory.outputs)
            contexts.append(ctx * present[:, :, None])  # [B, T, M]
            weights.append(w * present[:, :, None])  # [B, T, S]
        gate = torch.softmax(self.gate(torch.cat([query, *contexts], -1)), -1)  # [B, T, k]
        context = sum(gate[:, :, k : k + 1] * c for k, c in enumerate(contexts))
        attn = sum(gate[:, :, k : k + 1] * w for k, w in enumerate(weights))
        return context, attn


def build_multi_source(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, sources: int
) -> Seq2Seq:
    """The preset with a :class:`MultiSourceEncoder` over ``sources`` packed fields."""
    mode = cfg.fusion.mode
    if cfg.reverse_source:
        raise ValueError("model.reverse_source is not supported with several source fields")
    if cfg.attention.window != "global":
        raise ValueError("local attention windows need one source (positions are packed)")
    if cfg.preset == "transformer" and mode != "concat_time":
        raise ValueError(f"model.fusion.mode={mode!r}: the transformer supports concat_time")
    if mode == "gated":
        base = build_parts(cfg, src_vocab_size, tgt_vocab_size, GatedRNNDecoder, sources=sources)
    else:
        base = build_parts(cfg, src_vocab_size, tgt_vocab_size)
    encoders = [base.encoder]
    if not cfg.fusion.shared_encoder:
        encoders += [build_encoder(cfg, src_vocab_size) for _ in range(sources - 1)]
    encoder = MultiSourceEncoder(encoders, sources, mode)
    return Seq2Seq(encoder, base.decoder, base.head, reverse_source=False)
