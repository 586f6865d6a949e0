"""The series task: real-valued (or fixed-length token) outputs on :class:`ArrayData`.

Losses ``mse``/``mae``/``huber`` for values ``[B, T, D]``, ``crossentropy`` for class
outputs ``[B, T]`` (id 0 is a class, not padding). Validation scores what inference does:
the free roll-out for values, the teacher-forced accuracy for tokens; ``train_loss`` is the
mean training loss since the previous validation (the Keras ``loss``).
"""

from __future__ import annotations

from typing import Any

import torch

from transduce.config import Config
from transduce.data.series import ArrayData
from transduce.engine.objective import Objective


class SeriesTask:
    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        train_data: ArrayData,
        valid_data: ArrayData,
        loss: str = "mse",
    ):
        self.cfg, self.model, self.kind = cfg, model, loss
        self.train_data, self.valid_data = train_data, valid_data
        self.objective = Objective(model, loss)

    def validate(self, loop) -> dict[str, Any]:
        total, correct, count = 0.0, 0, 0
        ratio = 1.0 if self.kind == "crossentropy" else 0.0  # values: the free roll-out
        for batch in self.valid_data.iter_batches(self.cfg.train.batch_size):
            batch = batch.to(loop.device)
            with loop.autocast():
                loss, right = self.objective(batch, ratio)
            total, count = total + float(loss), count + batch.ntokens
            correct += 0 if right is None else int(right)
        metrics = {"loss": total / max(count, 1)}
        if self.kind == "crossentropy":
            metrics["acc"] = correct / max(count, 1)
        if loop.train_losses:
            metrics["train_loss"] = sum(loop.train_losses) / len(loop.train_losses)
        return metrics
