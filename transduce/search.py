"""Decoding strategies. They know only the step contract (ARCHITECTURE §2):
``model.encode``, ``model.init_state``, ``model.step``, ``model.head`` and ``State.select``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from transduce.data.vocab import BOS_ID, EOS_ID


class Hypotheses(NamedTuple):
    tokens: torch.Tensor  # [B, T] output ids without </s>, 0-padded
    lengths: torch.Tensor  # [B] number of output tokens (</s> not counted)
    scores: torch.Tensor  # [B] sum of log-probabilities, </s> included when produced
    attention: torch.Tensor | None  # [B, T, S] weights per output token, or None


def length_limits(
    src_mask: torch.Tensor, max_len: int, max_len_ratio: float | None = None
) -> torch.Tensor:
    """Per-sentence output limit ``[B]``: ``max_len``, or ``ceil(ratio * |src|) + 5`` capped."""
    limits = torch.full((src_mask.shape[0],), max_len, dtype=torch.long, device=src_mask.device)
    if max_len_ratio is not None:
        # float64 and a tiny tolerance, so exact products (1.2 * 25 = 30) do not round up.
        relative = (src_mask.sum(1).double() * max_len_ratio - 1e-9).ceil().long() + 5
        limits = torch.minimum(limits, relative)
    return limits


@torch.no_grad()
def greedy(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    max_len: int = 200,
    max_len_ratio: float | None = None,
) -> Hypotheses:
    """Batched greedy decoding. Sentences that finish leave the batch (``State.select``),
    so the remaining steps run on the unfinished ones only.
    """
    batch, device = src.shape[0], src.device
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    limits = length_limits(src_mask, max_len, max_len_ratio)
    steps = int(limits.max()) if batch else 0
    tokens = torch.zeros(batch, steps, dtype=torch.long, device=device)
    attention = None
    scores = torch.zeros(batch, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.arange(batch, device=device)  # original row of each live row
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    for t in range(steps):
        features, state, attn = model.step(prev, state, memory)
        logp = F.log_softmax(model.head(features).float(), dim=-1)  # [b, V]
        best, prev = logp.max(-1)
        scores[active] += best
        tokens[active, t] = prev
        if attn is not None:
            if attention is None:
                attention = torch.zeros(batch, steps, src.shape[1], device=device)
            attention[active, t] = attn.float()
        ended = prev == EOS_ID
        done = ended | (t + 1 >= limits[active])
        lengths[active[done]] = t + 1 - ended[done].long()
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            active, prev = active[keep], prev[keep]
            state, memory = state.select(keep), memory.select(keep)
    width = int(lengths.max()) if batch else 0
    tokens = tokens[:, :width]
    valid = torch.arange(width, device=device)[None, :] < lengths[:, None]
    tokens = tokens.masked_fill(~valid, 0)
    if attention is not None:
        attention = attention[:, :width] * valid[:, :, None]
    return Hypotheses(tokens, lengths, scores, attention)
