"""The teacher-forcing policy, the one place training decides what the decoder is fed.

Teacher forcing feeds the gold previous output; scheduled sampling (Bengio et al. 2015,
"Scheduled Sampling for Sequence Prediction with Recurrent Neural Networks") feeds, per
example and step, the gold output with probability ``ratio`` and the model's own otherwise,
with ``ratio`` decaying over training (section 2.4). Text (token ids) and series (real
values followed by known exogenous features) both unroll through :func:`unroll`.
Inference's roll-out (:func:`transduce.inference.search.rollout`) is the ``ratio = 0`` case.
"""

from __future__ import annotations

import math

import torch

from transduce.config import TrainConfig


def teacher_forcing_ratio(cfg: TrainConfig, step: int) -> float:
    """Probability of feeding the gold output at ``step``: constant, or linear, exponential
    and inverse-sigmoid decay (Bengio et al. 2015, section 2.4)."""
    top, low, k = cfg.teacher_forcing, cfg.teacher_forcing_min, cfg.teacher_forcing_k
    if cfg.teacher_forcing_schedule == "constant":
        return top
    if cfg.teacher_forcing_schedule == "linear":
        return max(low, top - (top - low) * step / k)
    if cfg.teacher_forcing_schedule == "exponential":  # k < 1 here: ratio = k ** step
        return max(low, top * k**step)
    return max(low, top * k / (k + math.exp(min(step / k, 700.0))))  # inverse sigmoid


def mix(gold: torch.Tensor, own: torch.Tensor, ratio: float, coins: torch.Generator | None):
    """Per example (dim 0): ``gold`` with probability ``ratio``, else ``own``. No coin is
    drawn at ratio 0 (pure free running) so the coin stream only moves when it matters."""
    if ratio <= 0:
        return own
    coin = torch.rand(gold.shape[0], generator=coins).to(gold.device) < ratio
    return torch.where(coin.view(-1, *([1] * (gold.dim() - 1))), gold, own)


def unroll(
    model,
    memory,
    state,
    tgt_in: torch.Tensor,
    ratio: float,
    coins: torch.Generator | None,
    values: int | None = None,
) -> torch.Tensor:
    """Step-by-step decoding of ``tgt_in`` under scheduled sampling; returns the head's
    outputs ``[B, T, V]`` (logits) or ``[B, T, D]`` (values).

    ``values=None``: ``tgt_in [B, T]`` are token ids and the model's own choice is its
    argmax (no gradient through the choice). ``values=D``: ``tgt_in [B, T, D + C]`` holds
    the previous ``D`` values then ``C`` known features of each step; the model's own
    values are fed back with their gradient, as in the inference roll-out.
    """
    prev, steps, outs = tgt_in[:, 0], tgt_in.shape[1], []
    for t in range(steps):
        features, state, _ = model.step(prev, state, memory)
        outs.append(model.head(features))  # [B, V] or [B, D]
        if t + 1 == steps:
            break
        if values is None:
            prev = mix(tgt_in[:, t + 1], outs[-1].argmax(-1).detach(), ratio, coins)
        else:
            own = mix(tgt_in[:, t + 1, :values], outs[-1][..., :values], ratio, coins)
            prev = torch.cat([own, tgt_in[:, t + 1, values:]], -1)  # [B, D + C]
    return torch.stack(outs, 1)
