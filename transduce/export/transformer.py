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
once per source, the cache as ``[b, f, h, d/h, t]`` keys and ``[b, f, h, t, d/h]`` values.
A step then reads them in place (``MatMul`` on 4-D and 5-D tensors), and the only copy
left is the one ``Concat`` that appends this position to the cache, as in any KV-cached
decoder (the layout of Ott et al. 2019's fairseq incremental state, by layer).

Its rows are grouped by source: ``prev [b, f]`` holds ``f`` hypotheses of each of ``b``
sources, so beam search never repeats the memory per hypothesis (the runtime's
``SharedArrays``), and each source's cross-attention is one matrix product for all its
hypotheses. Between the attentions rows are flat ``[b * f, d]`` (every linear layer one
``Gemm``).
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
    dynamic (``"src"``: the source length, ``"cache"``: the cache length, ``"group"``: the
    rows per source)."""
    cls = namedtuple(name, fields)
    cls.axes = axes
    return cls


class ExportTransformerDecoder(nn.Module):
    """The step contract of ``decoder`` (shared weights) with per-layer, head-split memory
    and cache (see the module docstring), grouped by source: a step reads ``f`` rows per
    source row (``f`` beam hypotheses), so the memory is never copied per hypothesis.
    Outputs equal the original's to float rounding."""

    grouped = True  # the runtime feeds prev [b, f] and state [b, f, ...] (runtime/model.py)

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
            {"step": {1: "group"}}
            | {f"k{i}": {1: "group", 4: "cache"} for i in n}
            | {f"v{i}": {1: "group", 3: "cache"} for i in n},
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
        """One hypothesis per source, empty caches: keys ``[B, 1, h, d/h, 0]``, values
        ``[B, 1, h, 0, d/h]``, step ``[B, 1]``."""
        b = memory.mask.shape[0]
        k = memory.k0.new_zeros(b, 1, self.heads, self.head_size, 0)
        v = memory.k0.new_zeros(b, 1, self.heads, 0, self.head_size)
        step = torch.zeros(b, 1, dtype=torch.long, device=memory.mask.device)
        return self.State(step, *([k] * self.layers), *([v] * self.layers))

    def _heads(self, x: torch.Tensor, b: int, f: int) -> torch.Tensor:
        return x.reshape(b, f, self.heads, 1, self.head_size)  # [b * f, d] -> [b, f, h, 1, d/h]

    def _self_attn(self, a, h, past_k, past_v, b, f, keys: list, values: list):
        """Self-attention of this position over the cache and itself: ``h [b * f, d]``,
        past keys ``[b, f, h, d/h, t - 1]``, values ``[b, f, h, t - 1, d/h]`` ->
        ``[b * f, d]``; appends the grown cache to ``keys`` / ``values``."""
        k = torch.cat([past_k, self._heads(a.k(h), b, f).transpose(3, 4)], 4)  # [b, f, h, d/h, t]
        v = torch.cat([past_v, self._heads(a.v(h), b, f)], 3)  # [b, f, h, t, d/h]
        keys.append(k)
        values.append(v)
        q = self._heads(a.q(h), b, f) / math.sqrt(self.head_size)  # [b, f, h, 1, d/h]
        weights = torch.softmax(torch.matmul(q, k).float(), dim=-1).to(v.dtype)  # all allowed
        return a.out(torch.matmul(weights, v).reshape(h.shape))  # [b * f, d]

    def _cross_attn(self, a, h, keys, values, mask, b, f):
        """Attention of the ``f`` rows of each source over it: ``h [b * f, d]``, keys
        ``[b, h, d/h, S]``, values ``[b, h, S, d/h]``, ``mask [b, 1, 1, S]`` -> output
        ``[b * f, d]``, weights ``[b, h, f, S]``."""
        q = a.q(h).reshape(b, f, self.heads, self.head_size).transpose(1, 2)  # [b, h, f, d/h]
        scores = torch.matmul(q / math.sqrt(self.head_size), keys)  # [b, h, f, S]
        weights = torch.softmax(scores.masked_fill(~mask, float("-inf")).float(), dim=-1)
        context = torch.matmul(weights.to(values.dtype), values).transpose(1, 2)  # [b, f, h, d/h]
        return a.out(context.reshape(h.shape)), weights

    def step(self, prev: torch.Tensor, state, memory):
        """``prev [b, f]`` (``f`` rows per source row) -> features ``[b, f, d]``, state with
        this position cached, attention ``[b, f, S]`` (the last layer's, mean over heads).
        Rows are flattened to ``[b * f, d]`` between attentions (2-D linear layers: Gemm)."""
        inner, (b, f) = self.inner, prev.shape
        x = inner.embed_at(prev, state.step).reshape(b * f, self.size)  # [b * f, d]
        mask = memory.mask[:, None, None, :]  # [b, 1, 1, S]
        keys, values, weights = [], [], None
        for i, layer in enumerate(inner.layers):
            past = getattr(state, f"k{i}"), getattr(state, f"v{i}")
            mem = getattr(memory, f"k{i}"), getattr(memory, f"v{i}")

            def sa(h, a=layer.self_attn, p=past):
                return self._self_attn(a, h, *p, b, f, keys, values)

            def ca(h, a=layer.cross_attn, m=mem):
                return self._cross_attn(a, h, *m, mask, b, f)

            x = self._residual(layer, x, 0, sa)
            x, weights = self._residual(layer, x, 1, ca, True)
            x = self._residual(layer, x, 2, lambda h, ff=layer.ff: ff(h))
        new = self.State(state.step + 1, *keys, *values)
        return inner.final_norm(x).reshape(b, f, self.size), new, weights.mean(1)

    @staticmethod
    def _residual(layer, x, i: int, fn, with_weights: bool = False):
        """``Block.residual``: pre-norm or post-norm around ``fn``."""
        out = fn(layer.norms[i](x) if layer.pre_norm else x)
        y, weights = out if with_weights else (out, None)
        x = x + y
        x = x if layer.pre_norm else layer.norms[i](x)
        return (x, weights) if with_weights else x
