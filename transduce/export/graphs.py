"""The step contract as four exportable graphs: encoder, ``init_state``, ``step``, head.

Each graph takes and returns flat tensors; the NamedTuples of the contract (``Memory``,
``DecoderState``, ``TransformerState``) travel as their non-None fields, named
``memory.<field>`` and ``state.<field>``. Search stays outside the graphs (the split that
Hugging Face Optimum uses for encoder-decoders): :mod:`transduce.runtime` runs the same
search over them.

The recurrent encoder packs padded sources (``pack_padded_sequence``), which does not
export; :class:`ExportRNNEncoder` computes the same thing with plain RNN calls: the forward
direction runs over the padded batch (padding comes after each sentence's end, so it never
reaches a real position) and the backward direction over each row reversed in place; final
states are read at each sentence's last real position.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from transduce.nn.encoders import RNN_CLASSES, Memory, RNNEncoder
from transduce.nn.models import reverse_padded
from transduce.nn.transformer import TransformerDecoder


def flat(t) -> tuple[list[str], list[torch.Tensor]]:
    """A NamedTuple's non-None fields: (names, tensors)."""
    names = [n for n, v in zip(t._fields, t, strict=True) if v is not None]
    return names, [getattr(t, n) for n in names]


def rebuild(cls, names: list[str], tensors) -> tuple:
    """``cls`` from the named tensors; fields not given are None."""
    given = dict(zip(names, tensors, strict=True))
    return cls(*(given.get(f) for f in cls._fields))


class ExportRNNEncoder(nn.Module):
    """:class:`RNNEncoder` without packed sequences (same outputs and final states)."""

    def __init__(self, enc: RNNEncoder):
        super().__init__()
        self.embed, self.layers, self.directions = enc.embed, enc.layers, enc.directions
        self.output_size = enc.output_size
        cls = type(enc.rnn)
        self.is_lstm = cls is nn.LSTM
        if cls not in RNN_CLASSES.values() or cls is nn.RNN:
            raise ValueError(
                "cell 'rnn' cannot be exported to ONNX (its encoder loop does not keep a "
                "dynamic source length); use cell gru or lstm"
            )
        self.cells = nn.ModuleList()
        for layer in range(enc.layers):
            for d in range(enc.directions):
                size_in = enc.rnn.input_size if layer == 0 else enc.output_size
                cell = cls(size_in, enc.rnn.hidden_size, batch_first=True)
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, f"{name}_l0").data.copy_(getattr(enc.rnn, name + suffix).data)
                self.cells.append(cell)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """``src [B, S]`` ids (or ``[B, S, F]`` values), ``src_mask [B, S]`` -> Memory."""
        x = self.embed(src)  # [B, S, E]
        lengths = src_mask.sum(1).clamp(min=1)  # [B] an empty row runs one step, as packed
        last = (lengths - 1)[:, None, None]  # [B, 1, 1]
        pos = torch.arange(src_mask.shape[1], device=src.device)[None, :]  # [1, S]
        real = (pos < lengths[:, None])[:, :, None].to(x.dtype)  # [B, S, 1]
        hs, cs = [], []
        for layer in range(self.layers):
            outs, lh, lc = [], [], []
            for d in range(self.directions):
                inp = reverse_padded(x, src_mask) if d else x
                out, _ = self.cells[layer * self.directions + d](inp)  # [B, S, H]
                index = last.expand(-1, 1, out.shape[-1])
                lh.append(out.gather(1, index)[:, 0])  # [B, H] state at the real end
                if self.is_lstm:
                    lc.append(self._cell_at_end(layer * self.directions + d, inp, index))
                outs.append(reverse_padded(out, src_mask) if d else out)
            x = torch.cat(outs, -1) * real  # zeros at padding, as pad_packed_sequence gives
            hs.append(torch.cat(lh, -1))
            cs.extend([torch.cat(lc, -1)] if lc else [])
        final_c = torch.stack(cs, 1) if cs else None
        return Memory(x, src_mask, torch.stack(hs, 1), final_c)

    def _cell_at_end(self, i: int, inp: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The LSTM cell state at each row's last real position ``[B, H]``. The fused call
        returns only the cell state after the whole padded row, so it is rebuilt from the
        outputs with the cell's gate equations: c_t = f_t c_{t-1} + i_t g_t is linear in c,
        so c_T = sum_{s<=T} exp(F_T - F_s) i_s g_s with F the running sum of log f (all
        exponents <= 0, so no overflow), and no loop over time."""
        cell = self.cells[i]
        out, _ = cell(inp)  # [B, S, H]
        h_prev = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], 1)  # [B, S, H]
        gates = (
            inp @ cell.weight_ih_l0.T
            + cell.bias_ih_l0
            + h_prev @ cell.weight_hh_l0.T
            + cell.bias_hh_l0
        )
        i_g, f_g, g_g, _ = gates.chunk(4, -1)  # [B, S, H] each
        ig = torch.sigmoid(i_g) * torch.tanh(g_g)
        logf = torch.nn.functional.logsigmoid(f_g).cumsum(1)  # [B, S, H] F_s
        at_end = logf.gather(1, index)  # [B, 1, H] F_T
        pos = torch.arange(inp.shape[1], device=inp.device)[None, :, None]  # [1, S, 1]
        upto = pos <= index[:, :, :1]  # [B, S, 1] s <= T
        weight = torch.exp(torch.where(upto, at_end - logf, torch.full_like(logf, -1e4)))
        return (weight * ig).sum(1)  # [B, H]


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose encoder(s) export: RNN encoders become
    :class:`ExportRNNEncoder`, a transformer decoder
    :class:`~transduce.export.transformer.ExportTransformerDecoder` (a faster graph
    layout); everything else is shared code."""
    from transduce.export.transformer import ExportTransformerDecoder

    model = copy.deepcopy(model).eval()
    if isinstance(model.decoder, TransformerDecoder):
        model.decoder = ExportTransformerDecoder(model.decoder)
    if isinstance(model.encoder, RNNEncoder):
        model.encoder = ExportRNNEncoder(model.encoder)
    elif hasattr(model.encoder, "encoders"):  # multi-source
        model.encoder.full_width = True
        model.encoder.encoders = nn.ModuleList(
            ExportRNNEncoder(e) if isinstance(e, RNNEncoder) else e for e in model.encoder.encoders
        )
    return model
