"""The training objective: one module whose ``forward(batch, ratio)`` is the whole training
computation (encode, teacher forcing or scheduled sampling, loss), so that
DistributedDataParallel can sit around it (its hooks arm in ``forward``), as fairseq's
criterion-wrapped model and nanoGPT's ``model(x, y) -> loss`` do.

It returns *sums* (the summed loss, the number of correct tokens) and leaves the division
by the number of target tokens to the caller, which knows the global count over ranks and
accumulated micro-batches (:mod:`transduce.engine.parallel`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from transduce.data.vocab import PAD_ID
from transduce.engine.losses import token_cross_entropy
from transduce.engine.teacher import unroll

Loss = Literal["tokens", "crossentropy", "mse", "mae", "huber"]


def regression_loss(pred: torch.Tensor, gold: torch.Tensor, kind: str) -> torch.Tensor:
    """Summed elementwise loss of ``pred`` vs ``gold`` (both ``[B, T, D]``)."""
    pred, gold = pred.float(), gold.float()
    if kind == "mse":
        return F.mse_loss(pred, gold, reduction="sum")
    if kind == "mae":
        return F.l1_loss(pred, gold, reduction="sum")
    if kind == "huber":
        return F.smooth_l1_loss(pred, gold, reduction="sum", beta=0.1)
    raise ValueError(f"unknown regression loss {kind!r} (mse, mae, huber)")


class Objective(nn.Module):
    """``model`` under a loss. ``tokens``: text, cross-entropy over target ids with
    padding (id 0) ignored and label smoothing in training; ``crossentropy``: fixed-length
    token outputs where id 0 is a class; ``mse``/``mae``/``huber``: real-valued outputs.

    ``coins`` draws the scheduled-sampling coins (each rank its own generator).
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Loss = "tokens",
        label_smoothing: float = 0.0,
        coins: torch.Generator | None = None,
    ):
        super().__init__()
        self.model, self.kind, self.label_smoothing = model, loss, label_smoothing
        self.coins = coins if coins is not None else torch.Generator()
        # observe(batch, outputs, correct): a look at every forward (the array API's metrics)
        self.observe: Callable[[Any, torch.Tensor, torch.Tensor | None], None] | None = None

    def outputs(self, batch, ratio: float) -> torch.Tensor:
        """The model's outputs on ``batch``: teacher-forced at ``ratio >= 1`` (one parallel
        decoder pass), else unrolled under scheduled sampling."""
        memory = self.model.encode(batch.src, batch.src_mask)
        state = self.model.init_state(memory)
        if ratio >= 1.0:
            features, _ = self.model.decoder(batch.tgt_in, memory, state)
            return self.model.head(features)
        values = None if self.kind in ("tokens", "crossentropy") else batch.tgt_out.shape[-1]
        return unroll(self.model, memory, state, batch.tgt_in, ratio, self.coins, values)

    def forward(self, batch, ratio: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summed loss over the target tokens (values), and the number of correct tokens
        (token losses in eval mode; None otherwise)."""
        out = self.outputs(batch, ratio)
        if self.kind not in ("tokens", "crossentropy"):
            if self.observe is not None:
                self.observe(batch, out, None)
            return regression_loss(out, batch.tgt_out, self.kind), None
        flat = out.reshape(-1, out.shape[-1])
        target = batch.tgt_out.reshape(-1)
        text = self.kind == "tokens"
        loss = token_cross_entropy(
            flat,
            target,
            self.label_smoothing if (self.training and text) else 0.0,
            ignore_index=PAD_ID if text else -100,
        )
        if self.training and text:
            return loss, None
        right = flat.argmax(-1) == target
        correct = (right & (target != PAD_ID) if text else right).sum()
        if self.observe is not None:
            self.observe(batch, out, correct)
        return loss, correct
