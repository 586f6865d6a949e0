"""The transformer decoder in the layout its exported ``step`` graph runs fastest in.

:class:`transduce.nn.transformer.TransformerDecoder` keeps one cross-attention key/value
tensor ``[B, S, layers * 2 * d]`` and a self-attention cache ``[B, layers, t, d]``; each
step slices them per layer and splits heads (reshape + transpose). In PyTorch those are
mostly views, but in an ONNX graph every slice and transpose is a copy: profiling the
exported step (beam 5, batch 64, the tiny Multi30k transformer) found ``Split`` and
``Transpose`` taking 37% of its time, copying the whole source memory every step.

:class:`ExportTransformerDecoder` computes the same function from the same weights with
every per-layer tensor a separate graph input, already split into heads, keys stored
transposed: cross-attention keys ``[B, h, d/h, S]`` and values ``[B, h, S, d/h]`` computed
once per source, the cache as ``[B, h, d/h, t]`` keys and ``[B, h, t, d/h]`` values. A step
then reads them in place (``MatMul`` on 4-D tensors), and the only copy left is the one
``Concat`` that appends this position to the cache, as in any KV-cached decoder (the
layout of Ott et al. 2019's fairseq incremental state, by layer).
"""

from __future__ import annotations

import math
from collections import namedtuple

import torch
from torch import nn

from transduce.nn.encoders import Memory
from transduce.nn.transformer import TransformerDecoder


def _fields(name: str, fields: list[str], axes: dict[str, dict[int, str]]):
    """A NamedTuple class whose ``axes`` say, per field, which axes beyond the batch are
    dynamic (``"src"``: the source length, ``"cache"``: the cache length)."""
    cls = namedtuple(name, fields)
    cls.axes = axes
    return cls


class ExportTransformerDecoder(nn.Module):
    """The step contract of ``decoder`` (shared weights) with per-layer, head-split memory
    and cache (see the module docstring); outputs equal the original's to float rounding."""

    def __init__(self, decoder: TransformerDecoder):
        super().__init__()
        self.inner = decoder
        self.size, self.layers = decoder.size, len(decoder.layers)
        self.heads = decoder.layers[0].self_attn.heads
        self.head_size = self.size // self.heads
        n = range(self.layers)
        self.Memory = _fields(
            "CrossMemory",
            ["mask", *(f"k{i}" for i in n), *(f"v{i}" for i in n)],
            {"mask": {1: "src"}, **{f"k{i}": {3: "src"} for i in n}}
            | {f"v{i}": {2: "src"} for i in n},
        )
        self.State = _fields(
            "CacheState",
            ["step", *(f"k{i}" for i in n), *(f"v{i}" for i in n)],
            {f"k{i}": {3: "cache"} for i in n} | {f"v{i}": {2: "cache"} for i in n},
        )

    def prepare(self, memory: Memory):
        """Cross-attention keys ``[B, h, d/h, S]`` and values ``[B, h, S, d/h]`` per layer."""
        b, s, _ = memory.outputs.shape
        shape = (b, s, self.heads, self.head_size)
        keys, values = [], []
        for layer in self.inner.layers:
            a = layer.cross_attn
            keys.append(a.k(memory.outputs).view(shape).permute(0, 2, 3, 1).contiguous())
            values.append(a.v(memory.outputs).view(shape).transpose(1, 2).contiguous())
        return self.Memory(memory.mask, *keys, *values)

    def init_state(self, memory):
        """An empty cache per layer: keys ``[B, h, d/h, 0]``, values ``[B, h, 0, d/h]``."""
        b = memory.mask.shape[0]
        k = memory.k0.new_zeros(b, self.heads, self.head_size, 0)
        v = memory.k0.new_zeros(b, self.heads, 0, self.head_size)
        step = torch.zeros(b, dtype=torch.long, device=memory.mask.device)
        return self.State(step, *([k] * self.layers), *([v] * self.layers))

    def _attend(self, a, q, keys, values, mask):
        """Multi-head attention of one position: ``q [B, d]`` (projected), keys
        ``[B, h, d/h, t]``, values ``[B, h, t, d/h]``, ``mask [B, 1, 1, t]`` or None ->
        output ``[B, d]``, weights ``[B, h, 1, t]``."""
        b = q.shape[0]
        q = q.reshape(b, self.heads, 1, self.head_size) / math.sqrt(self.head_size)
        scores = torch.matmul(q, keys)  # [B, h, 1, t]
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores.float(), dim=-1).to(values.dtype)
        context = torch.matmul(weights, values).reshape(b, self.size)  # [B, d]
        return a.out(context), weights

    def step(self, prev: torch.Tensor, state, memory):
        """``prev [B]`` -> features ``[B, d]``, state with this position cached, attn ``[B, S]``
        (cross-attention weights of the last layer, averaged over heads)."""
        inner, b = self.inner, prev.shape[0]
        x = inner.embed_at(prev[:, None], state.step[:, None])[:, 0]  # [B, d]
        cross_mask = memory.mask[:, None, None, :]  # [B, 1, 1, S]
        keys, values, weights = [], [], None
        for i, layer in enumerate(inner.layers):
            a = layer.self_attn
            past_k, past_v = getattr(state, f"k{i}"), getattr(state, f"v{i}")

            def self_attn(h, a=a, past_k=past_k, past_v=past_v):
                shape = (b, self.heads, self.head_size, 1)
                k = torch.cat([past_k, a.k(h).reshape(shape)], 3)  # [B, h, d/h, t]
                v = torch.cat([past_v, a.v(h).reshape(b, self.heads, 1, -1)], 2)
                keys.append(k)
                values.append(v)
                return self._attend(a, a.q(h), k, v, None)[0]  # every cached position allowed

            def cross_attn(h, a=layer.cross_attn, i=i):
                k, v = getattr(memory, f"k{i}"), getattr(memory, f"v{i}")
                return self._attend(a, a.q(h), k, v, cross_mask)

            x = self._residual(layer, x, 0, self_attn)
            x, weights = self._residual(layer, x, 1, cross_attn, True)
            x = self._residual(layer, x, 2, lambda h, f=layer.ff: f(h))
        new = self.State(state.step + 1, *keys, *values)
        return inner.final_norm(x), new, weights.mean(1)[:, 0]

    @staticmethod
    def _residual(layer, x, i: int, fn, with_weights: bool = False):
        """``Block.residual`` on ``[B, d]``: pre-norm or post-norm around ``fn``."""
        out = fn(layer.norms[i](x) if layer.pre_norm else x)
        y, weights = out if with_weights else (out, None)
        x = x + y
        x = x if layer.pre_norm else layer.norms[i](x)
        return (x, weights) if with_weights else x
