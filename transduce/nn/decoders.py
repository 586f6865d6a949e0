"""One recurrent decoder; the seeds' variants are settings of it (ARCHITECTURE §3).

Per step, the cell input is a concatenation of some of:
  the previous target token's embedding            (all but ``simple``)
  a fixed source summary c                         (``simple``: the only input; ``cho``)
  an attention context computed from h_{t-1}       (``bahdanau``: attention before the cell)
  the previous attentional vector                  (``luong`` input feeding)
and the features handed to the vocabulary head are one of:
  ``hidden``       h_t                                              (simple, sutskever)
  ``deep``         tanh(W [h_t; c_t; y_{t-1}])                      (cho, bahdanau)
  ``attentional``  tanh(W_c [h_t; c_t]) with attention after cell   (luong)

Variants without step-to-step feedback (no attention before the cell, no input feeding)
unroll the whole target in one fused RNN call when teacher-forced.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from transduce.nn.attention import attend
from transduce.nn.embed import TokenEmbedding
from transduce.nn.encoders import RNN_CLASSES, Memory, _select

_WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_CELL_FNS = {"gru": torch.gru_cell, "rnn": torch.rnn_tanh_cell}


class DecoderState(NamedTuple):
    """Immutable, batch-first decoder state; beam search reorders it with ``select``.

    h: ``[B, L, H]`` hidden state per layer; c: ``[B, L, H]`` LSTM cell state or None;
    feed: ``[B, F]`` previous attentional vector (input feeding) or None;
    fixed: ``[B, C]`` fixed source summary fed at every step, or None;
    step: ``[B]`` index of the next target position.
    """

    h: torch.Tensor
    c: torch.Tensor | None = None
    feed: torch.Tensor | None = None
    fixed: torch.Tensor | None = None
    step: torch.Tensor | None = None  # [B] target position (local attention windows)

    def select(self, index: torch.Tensor) -> DecoderState:
        return DecoderState(*(_select(t, index) for t in self))


class RNNDecoder(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        memory_size: int,
        cell: str = "gru",
        embed_size: int = 256,
        hidden_size: int = 256,
        layers: int = 1,
        dropout: float = 0.0,
        *,
        token_input: bool = True,
        fixed_context: bool = False,
        attention: Literal["none", "before", "after"] = "none",
        scorer: nn.Module | None = None,
        window: nn.Module | None = None,
        input_feeding: bool = False,
        readout: Literal["hidden", "deep", "attentional"] = "hidden",
        readout_size: int | None = None,
        bridge: Literal["none", "copy", "linear"] = "none",
        encoder_layers: int = 1,
        embed_dropout: float = 0.0,
        spatial_dropout: bool = False,
        embed: nn.Module | None = None,  # previous outputs -> [B, T, E]; None: token table
    ):
        super().__init__()
        if (attention == "none") != (scorer is None):
            raise ValueError("an attention position needs a scorer and vice versa")
        self.cell, self.layers, self.hidden_size = cell, layers, hidden_size
        self.attention, self.scorer, self.input_feeding = attention, scorer, input_feeding
        self.window = window  # None: global attention; else a LocalWindow
        self.fixed_context, self.readout, self.bridge = fixed_context, readout, bridge
        self.encoder_layers = encoder_layers
        if token_input and embed is None:
            embed = TokenEmbedding(vocab_size, embed_size, embed_dropout, spatial_dropout)
        self.embed = embed if token_input else None  # 'simple' reads no previous output
        context_size = memory_size if (attention != "none" or fixed_context) else 0
        self.output_size = hidden_size if readout == "hidden" else (readout_size or hidden_size)
        input_size = (
            (embed_size if token_input else 0)
            + (memory_size if fixed_context else 0)
            + (memory_size if attention == "before" else 0)
            + (self.output_size if input_feeding else 0)
        )
        self.rnn = RNN_CLASSES[cell](
            input_size, hidden_size, layers, batch_first=True, dropout=dropout if layers > 1 else 0
        )
        readout_in = hidden_size + context_size
        if readout == "deep":
            readout_in += embed_size if token_input else 0
        self.readout_proj = (
            None if readout == "hidden" else nn.Linear(readout_in, self.output_size, bias=False)
        )
        if bridge == "linear":
            self.bridge_h = nn.Linear(memory_size, layers * hidden_size)
            self.bridge_c = nn.Linear(memory_size, layers * hidden_size) if cell == "lstm" else None

    # ------------------------------------------------------------------ state

    def prepare(self, memory: Memory) -> Memory:
        """Precompute attention keys once per source."""
        if self.scorer is None:
            return memory
        return memory._replace(keys=self.scorer.prepare(memory.outputs))

    def init_state(self, memory: Memory) -> DecoderState:
        batch, top = memory.outputs.shape[0], memory.final_h[:, -1]  # top: [B, M]
        shape = (batch, self.layers, self.hidden_size)
        c = None
        if self.bridge == "linear":
            h = torch.tanh(self.bridge_h(top)).view(shape)
            if self.bridge_c is not None:
                c = self.bridge_c(top).view(shape)
        elif self.bridge == "copy":
            enc, dec = self.encoder_layers, self.layers
            # Decoder layer i takes encoder layer i (top layers when the decoder is shallower).
            idx = (
                list(range(enc - dec, enc))
                if dec <= enc
                else [*range(enc), *[enc - 1] * (dec - enc)]
            )
            if memory.final_h.shape[-1] != self.hidden_size:
                raise ValueError(
                    f"bridge 'copy' needs encoder state size {memory.final_h.shape[-1]} to equal "
                    f"decoder hidden size {self.hidden_size}; use bridge: linear"
                )
            h = memory.final_h[:, idx]
            if self.cell == "lstm":
                c = memory.final_c[:, idx] if memory.final_c is not None else torch.zeros_like(h)
        else:
            h = top.new_zeros(shape)
        if self.cell == "lstm" and c is None:
            c = torch.zeros_like(h)
        feed = top.new_zeros(batch, self.output_size) if self.input_feeding else None
        step = torch.zeros(batch, dtype=torch.long, device=top.device)
        return DecoderState(h.contiguous(), c, feed, top if self.fixed_context else None, step)

    # ------------------------------------------------------------------ steps

    def step(
        self, prev: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """``prev [B]`` ids -> features ``[B, F]``, new state, attention ``[B, S]`` or None."""
        emb = self.embed(prev[:, None]) if self.embed is not None else None  # [B, 1, E]
        feats, state, attn = self._step(emb, state, memory)
        return feats[:, 0], state, None if attn is None else attn[:, 0]

    def _step(self, emb, state: DecoderState, memory: Memory):
        """One step on ``emb [B, 1, E]`` (or None); returns ``[B, 1, F]`` features."""
        out, ctx, state, attn = self._recur(emb, state, memory)
        if self.input_feeding:  # the readout is the next step's input
            return state.feed[:, None], state, attn
        return self._readout(out, ctx, emb), state, attn

    def _recur(self, emb, state: DecoderState, memory: Memory):
        """The recurrent part of a step: cell output ``[B, 1, H]``, context, state, attn."""
        h, c, feed, fixed, step = state
        parts = [] if emb is None else [emb]
        ctx = attn = None
        if fixed is not None:
            ctx = fixed[:, None]  # [B, 1, M]
            parts.append(ctx)
        if self.attention == "before":
            query = h[:, -1:]  # [B, 1, H] top layer of h_{t-1}
            ctx, attn = self._attend(query, step[:, None], memory)
            parts.append(ctx)
        if self.input_feeding:
            parts.append(feed[:, None])
        out, (h, c) = self._run(torch.cat(parts, -1), h, c)  # out: [B, 1, H]
        if self.attention == "after":
            ctx, attn = self._attend(out, step[:, None], memory)
        feed = self._readout(out, ctx, emb)[:, 0] if self.input_feeding else None
        return out, ctx, DecoderState(h, c, feed, fixed, step + 1), attn

    def _attend(self, query: torch.Tensor, steps: torch.Tensor, memory: Memory):
        """Context ``[B, T, M]`` and weights ``[B, T, S]`` for queries ``[B, T, Hq]``."""
        scores = self.scorer.score(query, memory.keys)  # [B, T, S]
        if self.window is None:
            return attend(scores, memory.mask, memory.outputs)
        bias, allowed = self.window(query, steps, memory.mask)
        return attend(scores + bias, allowed, memory.outputs)

    def _run(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
        """Run the cell stack on ``x [B, T, I]`` from batch-first states ``[B, L, H]``."""
        if x.shape[1] == 1:
            return self._cell_step(x, h, c)
        hx = h.transpose(0, 1).contiguous()  # [L, B, H]
        if self.cell == "lstm":
            out, (hn, cn) = self.rnn(x, (hx, c.transpose(0, 1).contiguous()))
            return out, (hn.transpose(0, 1), cn.transpose(0, 1))
        out, hn = self.rnn(x, hx)
        return out, (hn.transpose(0, 1), None)

    def _cell_step(
        self,
        x: torch.Tensor | None,
        h: torch.Tensor,
        c: torch.Tensor | None,
        first: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ):
        """One time step with the fused RNN's own weights through the cell kernels: for a
        single step this avoids the whole-sequence kernel's per-call set-up cost. ``first``:
        layer 0's new (h, c) ``[B, H]`` when the caller computed it (then ``x`` is unused)."""
        inp, hs, cs = (None, [], []) if first is not None else (x[:, 0], [], [])
        if first is not None:
            inp = first[0]
            hs.append(first[0])
            cs.extend([] if first[1] is None else [first[1]])
        for layer in range(len(hs), self.layers):
            if layer:
                inp = F.dropout(inp, self.rnn.dropout, self.training)
            weights = [getattr(self.rnn, f"{n}_l{layer}") for n in _WEIGHT_NAMES]
            if self.cell == "lstm":
                hl, cl = torch.lstm_cell(inp, (h[:, layer], c[:, layer]), *weights)
                cs.append(cl)
            else:
                hl = _CELL_FNS[self.cell](inp, h[:, layer], *weights)
            hs.append(hl)
            inp = hl
        return inp[:, None], (torch.stack(hs, 1), torch.stack(cs, 1) if cs else None)

    def _readout(self, out, ctx, emb):
        if self.readout == "hidden":
            return out
        if ctx is not None and ctx.shape[1] != out.shape[1]:
            ctx = ctx.expand(-1, out.shape[1], -1)  # fixed context over all steps
        parts = [out] + ([ctx] if ctx is not None else [])
        if self.readout == "deep" and emb is not None:
            parts.append(emb)
        return torch.tanh(self.readout_proj(torch.cat(parts, -1)))

    # ------------------------------------------------------------------ teacher forcing

    @property
    def has_feedback(self) -> bool:
        """True when step t needs step t-1's outputs beyond the RNN state."""
        return self.attention == "before" or self.input_feeding

    def forward(
        self, tgt_in: torch.Tensor, memory: Memory, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced: ``tgt_in [B, T]`` -> features ``[B, T, F]``, attn ``[B, T, S]``."""
        emb = self.embed(tgt_in) if self.embed is not None else None  # [B, T, E]
        bahdanau = self.attention == "before" and not self.input_feeding
        if bahdanau and emb is not None and state.fixed is None:
            out, ctx, attn = self._unroll_attention_first(emb, memory, state)
            return self._readout(out, ctx, emb), attn
        if self.has_feedback:
            outs, ctxs, attns = [], [], []
            for t in range(tgt_in.shape[1]):
                e = None if emb is None else emb[:, t : t + 1]
                out, ctx, state, a = self._recur(e, state, memory)
                outs.append(state.feed[:, None] if self.input_feeding else out)
                ctxs.append(ctx)
                attns.append(a)
            attn = None if attns[0] is None else torch.cat(attns, 1)
            if self.input_feeding:
                return torch.cat(outs, 1), attn
            # No input feeding: the readout feeds nothing back, so run it once for all steps.
            ctx = None if ctxs[0] is None else torch.cat(ctxs, 1)
            return self._readout(torch.cat(outs, 1), ctx, emb), attn
        # Fast path: one fused RNN call over the whole target.
        steps = tgt_in.shape[1]
        parts = [] if emb is None else [emb]
        ctx = attn = None
        if state.fixed is not None:
            ctx = state.fixed[:, None].expand(-1, steps, -1)  # [B, T, M]
            parts.append(ctx)
        out, _ = self._run(torch.cat(parts, -1), state.h, state.c)  # [B, T, H]
        if self.attention == "after":
            steps_in = state.step[:, None] + torch.arange(steps, device=out.device)[None, :]
            ctx, attn = self._attend(out, steps_in, memory)
        return self._readout(out, ctx, emb), attn

    def _unroll_attention_first(self, emb: torch.Tensor, memory: Memory, state: DecoderState):
        """The teacher-forced loop of attention before the cell (Bahdanau et al. 2015), equal
        to looping :meth:`_recur` up to float rounding, with layer 0's input projection
        W [y_{t-1}; c_t] taken out of the loop: the token part is one matmul over all steps,
        and since c_t = sum_s a_ts m_s, W c_t = sum_s a_ts (W m_s) with W m_s projected once
        per source position. A step keeps the recurrent matmul and an S-long weighted sum.

        ``emb [B, T, E]`` -> cell outputs ``[B, T, H]``, contexts ``[B, T, M]``, attention
        ``[B, T, S]``.
        """
        w_ih, w_hh, b_ih, b_hh = (getattr(self.rnn, f"{n}_l0") for n in _WEIGHT_NAMES)
        size = emb.shape[-1]
        # unbind, not [:, t]: the backward of T slices would zero-fill T full-size buffers
        token_gates = F.linear(emb, w_ih[:, :size], b_ih).unbind(1)  # T x [B, G]
        memory_gates = F.linear(memory.outputs, w_ih[:, size:])  # [B, S, G]
        h, c, _, _, step = state
        outs, ctxs, attns = [], [], []
        for token_gate in token_gates:
            ctx, attn = self._attend(h[:, -1:], step[:, None], memory)  # [B, 1, M], [B, 1, S]
            gates = token_gate + torch.bmm(attn, memory_gates)[:, 0]  # [B, G]
            recurrent = F.linear(h[:, 0], w_hh, b_hh)  # [B, G]
            first = _cell_from_gates(
                self.cell, gates, recurrent, h[:, 0], c if c is None else c[:, 0]
            )
            out, (h, c) = self._cell_step(None, h, c, first)  # the layers above, if any
            outs.append(out)
            ctxs.append(ctx)
            attns.append(attn)
            step = step + 1
        return torch.cat(outs, 1), torch.cat(ctxs, 1), torch.cat(attns, 1)


def _cell_from_gates(
    cell: str, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One cell update from input gates ``gi`` and recurrent gates ``gh`` ``[B, G]`` (biases
    included), in PyTorch's gate order and equations (torch.nn.GRU / LSTM / RNN docs)."""
    if cell == "gru":
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        return new + update * (h - new), None  # (1 - z) n + z h
    if cell == "lstm":
        i, f, g, o = (gi + gh).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    return torch.tanh(gi + gh), None
