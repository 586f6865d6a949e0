"""The project's :class:`~transduce.trainer.Trainer` with a regression (or fixed-length
token) objective: only the loss and the validation differ, so schedules, clipping, early
stopping, atomic checkpoints, exact resume and metrics.jsonl are the token trainer's own.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.nn.functional as F

from transduce.config import Config
from transduce.data.series import ArrayData, ValueBatch
from transduce.search import rollout
from transduce.trainer import Trainer

Loss = Literal["mse", "mae", "huber", "crossentropy"]


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


class ValueTrainer(Trainer):
    """Trains on :class:`ArrayData`. ``loss``: ``mse``/``mae``/``huber`` for real outputs
    ``[B, T, D]``; ``crossentropy`` for fixed-length token outputs ``[B, T]`` (the array
    API's categorical targets; id 0 is a class, not padding).

    Teacher forcing follows ``train.teacher_forcing`` (1: the gold previous value; below 1:
    scheduled sampling of the model's own outputs). Validation scores what inference does:
    the free roll-out for values, the teacher-forced accuracy for tokens.
    """

    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        train_data: ArrayData,
        valid_data: ArrayData,
        run_dir: str | os.PathLike,
        loss: Loss = "mse",
    ):
        super().__init__(cfg, model, None, train_data, valid_data, run_dir)
        self.kind = loss
        self.train_losses: list[float] = []  # since the last validation (the Keras 'loss')

    def loss(self, batch: ValueBatch, ratio: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Summed loss over target values (or tokens), and correct tokens (eval, tokens)."""
        if self.kind == "crossentropy":
            return self._token_loss(batch, ratio)
        return regression_loss(self.predict_values(batch, ratio), batch.tgt_out, self.kind), None

    def predict_values(self, batch: ValueBatch, ratio: float) -> torch.Tensor:
        """``[B, T, D]``: teacher-forced (``ratio`` 1) or rolled out, feeding back the
        model's own outputs except where a coin of probability ``ratio`` gives the gold."""
        if ratio >= 1.0:
            pred, _ = self.model(batch.src, batch.src_mask, batch.tgt_in)  # [B, T, D]
        else:
            pred, _ = rollout(
                self.model, batch.src, batch.src_mask, batch.tgt_in,
                batch.tgt_out.shape[-1], teacher_ratio=ratio, generator=self.coins,
            )  # fmt: skip
        return pred

    def _token_loss(self, batch: ValueBatch, ratio: float):
        if ratio >= 1.0:
            logits, _ = self.model(batch.src, batch.src_mask, batch.tgt_in)  # [B, T, V]
        else:
            logits = self._scheduled_sampling(batch, *self._start(batch), ratio)
        flat = logits.reshape(-1, logits.shape[-1]).float()
        gold = batch.tgt_out.reshape(-1)
        loss = F.cross_entropy(flat, gold, reduction="sum")
        return loss, (flat.argmax(-1) == gold).sum()

    def _start(self, batch: ValueBatch):
        memory = self.model.encode(batch.src, batch.src_mask)
        return memory, self.model.init_state(memory)

    def update(self, batch: ValueBatch) -> tuple[float, int]:
        loss, ntok = super().update(batch)
        self.train_losses.append(loss)
        return loss, ntok

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        self.model.eval()
        total, correct, count = 0.0, 0, 0
        ratio = 1.0 if self.kind == "crossentropy" else 0.0
        for batch in self.valid_data.iter_batches(self.tcfg.batch_size):
            batch = batch.to(self.device)
            with self._autocast():
                loss, right = self.loss(batch, ratio)
            total, count = total + float(loss), count + batch.ntokens
            correct += 0 if right is None else int(right)
        metrics = {"loss": total / max(count, 1)}
        if self.kind == "crossentropy":
            metrics["acc"] = correct / max(count, 1)
        if self.train_losses:
            metrics["train_loss"] = sum(self.train_losses) / len(self.train_losses)
            self.train_losses = []
        return metrics
