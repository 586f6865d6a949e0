"""Autoregressive roll-out of a real-valued model: greedy decoding for values (forecasting),
over the step contract and the array ops of :mod:`transduce.inference.searchcore` (torch or numpy).
No torch is imported here."""

from __future__ import annotations


def rollout(ops, model, src, src_mask, tgt_in, out_dim: int, mix=None):
    """Autoregressive roll-out of a real-valued model (greedy decoding for values).

    ``tgt_in [B, T, D + C]``: row 0's first ``D`` values start the roll-out; columns ``D:``
    are known exogenous features of each step. ``mix(own [B, D], t) -> [B, D]`` may replace
    the model's own previous outputs (scheduled sampling in training). Returns outputs
    ``[B, T, D]`` and attention ``[B, T, S]`` (or None).
    """
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    prev, outs, attns = tgt_in[:, 0], [], []
    for t in range(tgt_in.shape[1]):
        features, state, attn = model.step(prev, state, memory)
        outs.append(model.head(features))  # [B, D]
        attns.append(attn)
        if t + 1 < tgt_in.shape[1]:
            own = outs[-1][..., :out_dim]  # a quantile head's extra columns: not fed back
            own = own if mix is None else mix(own, t)
            prev = ops.cat([own, tgt_in[:, t + 1, out_dim:]], -1)  # [B, D + C]
    attn = None if attns[0] is None else ops.stack(attns, 1)
    return ops.stack(outs, 1), attn
