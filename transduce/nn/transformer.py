"""The transformer (Vaswani et al. 2017) behind the same step contract as the RNNs.

Decoding is incremental: each step appends this position's self-attention keys and values
to a cache held in the immutable :class:`TransformerState` (so beam search reorders it with
``select`` like any other state), and the cross-attention keys and values are computed once
per source in ``prepare``. Pre-norm (Xiong et al. 2020) or post-norm layers; sinusoidal or
learned positions.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from transduce.nn.attention import attend
from transduce.nn.dropout import Dropout
from transduce.nn.embed import TokenEmbedding
from transduce.nn.encoders import Memory, _select


class TransformerState(NamedTuple):
    """keys / values: ``[B, layers, t, d]`` self-attention cache; step: ``[B]`` position."""

    keys: torch.Tensor
    values: torch.Tensor
    step: torch.Tensor

    def select(self, index: torch.Tensor) -> TransformerState:
        return TransformerState(*(_select(t, index) for t in self))


def sinusoid(positions: torch.Tensor, size: int) -> torch.Tensor:
    """Vaswani et al. 2017, section 3.5: ``[...]`` positions -> ``[..., size]``."""
    half = torch.arange(0, size, 2, device=positions.device, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * half / size)  # [size / 2]
    angles = positions.float()[..., None] * freq  # [..., size / 2]
    return torch.stack([angles.sin(), angles.cos()], -1).flatten(-2)[..., :size]


class Positions(nn.Module):
    def __init__(self, kind: str, size: int, max_positions: int):
        super().__init__()
        self.kind, self.size, self.max_positions = kind, size, max_positions
        self.table = nn.Embedding(max_positions, size) if kind == "learned" else None

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return sinusoid(positions, self.size)
        # a data-dependent check: left out of an ONNX export (torch.export cannot trace
        # it; the exported decoders bound positions by the manifest's table instead)
        exporting = torch.compiler.is_exporting() or torch.jit.is_tracing()
        if not exporting and positions.numel() and int(positions.max()) >= self.max_positions:
            raise ValueError(f"position beyond max_positions={self.max_positions}")
        return self.table(positions)


class MultiHeadAttention(nn.Module):
    def __init__(self, size: int, heads: int, dropout: float):
        super().__init__()
        if size % heads:
            raise ValueError(f"d_model {size} is not divisible by {heads} heads")
        self.heads, self.head_size = heads, size // heads
        self.q, self.k, self.v, self.out = (nn.Linear(size, size) for _ in range(4))
        self.dropout = dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, d] -> [B * h, T, d / h]
        b, t, _ = x.shape
        return (
            x.view(b, t, self.heads, self.head_size).transpose(1, 2).reshape(b * self.heads, t, -1)
        )

    def forward(self, query, keys, values, allowed) -> tuple[torch.Tensor, torch.Tensor]:
        """query ``[B, T, d]``; keys/values already split ``[B*h, S, d/h]``; allowed
        ``[B, T, S]`` -> output ``[B, T, d]``, weights averaged over heads ``[B, T, S]``."""
        b, t, _ = query.shape
        if self.training:
            return self._fused(query, keys, values, allowed), None
        q = self.split(self.q(query)) / math.sqrt(self.head_size)  # [B*h, T, d/h]
        scores = torch.bmm(q, keys.transpose(1, 2))  # [B*h, T, S]
        mask = allowed.repeat_interleave(self.heads, 0)  # [B*h, T, S]
        context, weights = attend(scores, mask, values)
        context = context.view(b, self.heads, t, -1).transpose(1, 2).reshape(b, t, -1)
        return self.out(context), weights.view(b, self.heads, t, -1).mean(1)

    def _fused(self, query, keys, values, allowed) -> torch.Tensor:
        """Training path: PyTorch's fused attention kernel, no weights kept. Every query row
        allows at least one key (sources are never empty), so no row is fully masked."""
        b, t, _ = query.shape
        shape = (b, self.heads, -1, self.head_size)
        q = self.q(query).view(b, t, self.heads, self.head_size).transpose(1, 2)  # [B, h, T, d/h]
        context = F.scaled_dot_product_attention(
            q,
            keys.view(shape),
            values.view(shape),
            attn_mask=allowed[:, None],
            dropout_p=self.dropout,
        )
        return self.out(context.transpose(1, 2).reshape(b, t, -1))


class Block(nn.Module):
    """One encoder (``cross=False``) or decoder layer: attention(s) + feed-forward, each
    in a residual with layer norm before (pre-norm) or after (post-norm)."""

    def __init__(self, size, heads, ff, dropout, attn_dropout, pre_norm, cross: bool):
        super().__init__()
        self.pre_norm = pre_norm
        self.self_attn = MultiHeadAttention(size, heads, attn_dropout)
        self.cross_attn = MultiHeadAttention(size, heads, attn_dropout) if cross else None
        self.ff = nn.Sequential(
            nn.Linear(size, ff), nn.ReLU(), Dropout(dropout), nn.Linear(ff, size)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(size) for _ in range(3 if cross else 2))
        self.drop = Dropout(dropout)

    def residual(self, x: torch.Tensor, i: int, fn) -> tuple[torch.Tensor, torch.Tensor | None]:
        y, attn = fn(self.norms[i](x) if self.pre_norm else x)
        x = x + self.drop(y)
        return (x if self.pre_norm else self.norms[i](x)), attn

    def forward(self, x, self_kv, self_allowed, cross_kv=None, cross_allowed=None):
        """``self_kv(h) -> (keys, values)`` gives this layer's self-attention keys/values
        for the normalised input ``h`` (the full sequence, or the cache plus this step)."""
        x, _ = self.residual(x, 0, lambda h: self.self_attn(h, *self_kv(h), self_allowed))
        attn = None
        if self.cross_attn is not None:
            x, attn = self.residual(x, 1, lambda h: self.cross_attn(h, *cross_kv, cross_allowed))
        x, _ = self.residual(x, len(self.norms) - 1, lambda h: (self.ff(h), None))
        return x, attn


class _Stack(nn.Module):
    def __init__(self, vocab, cfg, layers: int, cross: bool, embed_dropout: float):
        super().__init__()
        d = cfg.d_model
        self.size, self.pre_norm = d, cfg.pre_norm
        self.embed = TokenEmbedding(vocab, d)
        # N(0, d^-1/2) so that the sqrt(d) scaling gives unit-size inputs (and sensible
        # logits when the output projection is tied to this matrix).
        nn.init.normal_(self.embed.embed.weight, std=d**-0.5)
        with torch.no_grad():
            self.embed.embed.weight[self.embed.embed.padding_idx].zero_()
        self.positions = Positions(cfg.positions, d, cfg.max_positions)
        self.drop = Dropout(max(cfg.dropout, embed_dropout))
        self.layers = nn.ModuleList(
            Block(
                d, cfg.heads, cfg.ff_size, cfg.dropout, cfg.attention_dropout, cfg.pre_norm, cross
            )
            for _ in range(layers)
        )
        self.final_norm = nn.LayerNorm(d) if cfg.pre_norm else nn.Identity()

    def embed_at(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.drop(self.embed(ids) * math.sqrt(self.size) + self.positions(positions))


class TransformerEncoder(_Stack):
    def __init__(self, vocab: int, cfg, embed_dropout: float = 0.0):
        super().__init__(vocab, cfg, cfg.encoder_layers, cross=False, embed_dropout=embed_dropout)
        self.output_size = cfg.d_model

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """``src [B, S]`` -> Memory(outputs ``[B, S, d]``, mask, final_h = mean ``[B, 1, d]``)."""
        pos = torch.arange(src.shape[1], device=src.device)[None].expand_as(src)
        x = self.embed_at(src, pos)
        allowed = src_mask[:, None, :].expand(-1, src.shape[1], -1)  # [B, S, S]
        for layer in self.layers:
            attn = layer.self_attn
            x, _ = layer(x, lambda h, a=attn: (a.split(a.k(h)), a.split(a.v(h))), allowed)
        x = self.final_norm(x)
        weights = src_mask.unsqueeze(-1).to(x.dtype)
        mean = (x * weights).sum(1) / weights.sum(1).clamp(min=1)
        return Memory(x, src_mask, mean[:, None], None)


class TransformerDecoder(_Stack):
    has_feedback = False  # teacher forcing runs all positions at once

    def __init__(self, vocab: int, cfg, embed_dropout: float = 0.0):
        super().__init__(vocab, cfg, cfg.decoder_layers, cross=True, embed_dropout=embed_dropout)
        self.output_size = cfg.d_model

    def prepare(self, memory: Memory) -> Memory:
        """Cross-attention keys and values for every layer, once per source:
        ``keys [B, S, layers * 2 * d]``."""
        parts = []
        for layer in self.layers:
            parts += [layer.cross_attn.k(memory.outputs), layer.cross_attn.v(memory.outputs)]
        return memory._replace(keys=torch.cat(parts, -1))

    def _cross(self, memory: Memory, i: int):
        d, a = self.size, self.layers[i].cross_attn
        k = memory.keys[..., 2 * i * d : (2 * i + 1) * d]
        v = memory.keys[..., (2 * i + 1) * d : (2 * i + 2) * d]
        return a.split(k), a.split(v)

    def init_state(self, memory: Memory) -> TransformerState:
        b, device = memory.outputs.shape[0], memory.outputs.device
        empty = memory.outputs.new_zeros(b, len(self.layers), 0, self.size)
        return TransformerState(empty, empty, torch.zeros(b, dtype=torch.long, device=device))

    def step(self, prev: torch.Tensor, state: TransformerState, memory: Memory):
        """``prev [B]`` -> features ``[B, d]``, state with this position cached, attn ``[B, S]``."""
        x = self.embed_at(prev[:, None], state.step[:, None])  # [B, 1, d]
        keys, values, attn = [], [], None
        t = state.keys.shape[2] + 1
        allowed = torch.ones(x.shape[0], 1, t, dtype=torch.bool, device=x.device)
        cross_allowed = memory.mask[:, None, :]
        for i, layer in enumerate(self.layers):
            a = layer.self_attn

            def self_kv(h, i=i, a=a):
                k = torch.cat([state.keys[:, i], a.k(h)], 1)  # [B, t, d]
                v = torch.cat([state.values[:, i], a.v(h)], 1)
                keys.append(k)
                values.append(v)
                return a.split(k), a.split(v)

            x, attn = layer(x, self_kv, allowed, self._cross(memory, i), cross_allowed)
        new = TransformerState(torch.stack(keys, 1), torch.stack(values, 1), state.step + 1)
        return self.final_norm(x)[:, 0], new, attn[:, 0]

    def forward(self, tgt_in: torch.Tensor, memory: Memory, state: TransformerState):
        """Teacher-forced: ``tgt_in [B, T]`` -> features ``[B, T, d]``, attn ``[B, T, S]``."""
        b, t = tgt_in.shape
        pos = state.step[:, None] + torch.arange(t, device=tgt_in.device)[None]
        x = self.embed_at(tgt_in, pos)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()[None].expand(b, -1, -1)
        cross_allowed = memory.mask[:, None, :].expand(-1, t, -1)
        attn = None
        for i, layer in enumerate(self.layers):
            a = layer.self_attn
            kv = lambda h, a=a: (a.split(a.k(h)), a.split(a.v(h)))  # noqa: E731
            x, attn = layer(x, kv, causal, self._cross(memory, i), cross_allowed)
        return self.final_norm(x), attn
