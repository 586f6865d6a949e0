"""The series task: real-valued (or fixed-length token) outputs on :class:`ArrayData`.

Losses ``mse``/``mae``/``huber`` for values ``[B, T, D]``, ``crossentropy`` for class
outputs ``[B, T]`` (id 0 is a class, not padding). Validation scores what inference does:
the free roll-out for values, the teacher-forced accuracy for tokens; ``train_loss`` is the
mean training loss since the previous validation (the Keras ``loss``). A ``scorer`` sees
the rolled-out validation outputs ``[N, T, D]`` and adds its metrics (a forecasting run's
sMAPE / MASE / OWA in the data's units).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from transduce.config import Config
from transduce.data.series import ArrayData
from transduce.engine.objective import Objective, regression_loss


class SeriesTask:
    """``model`` trained on windows; ``loss`` and ``scorer`` as the module says."""

    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        train_data: ArrayData,
        valid_data: ArrayData,
        loss: str = "mse",
        scorer: Callable[[np.ndarray], dict[str, float]] | None = None,
    ):
        self.cfg, self.model, self.kind, self.scorer = cfg, model, loss, scorer
        self.train_data, self.valid_data = train_data, valid_data
        self.objective = Objective(model, loss)

    def plan(self, epoch: int, rank: int, world: int) -> list[np.ndarray]:
        """Shuffled windows, ``train.batch_size`` a batch."""
        t = self.cfg.train
        return self.train_data.batch_order(t.batch_size, t.seed, epoch, rank=rank, world=world)

    def batch(self, index: np.ndarray):
        return self.train_data.batch(index)

    def validate(self, loop) -> dict[str, Any]:
        total, correct, count, outputs = 0.0, 0, 0, []
        ratio = 1.0 if self.kind == "crossentropy" else 0.0  # values: the free roll-out
        for batch in self.valid_data.iter_batches(self.cfg.train.batch_size):
            batch = batch.to(loop.device)
            with loop.autocast():
                if self.scorer is not None and self.kind != "crossentropy":
                    outputs.append(self.objective.outputs(batch, ratio).float())
                    loss, right = regression_loss(outputs[-1], batch.tgt_out, self.kind), None
                else:
                    loss, right = self.objective(batch, ratio)
            total, count = total + float(loss), count + batch.ntokens
            correct += 0 if right is None else int(right)
        metrics = {"loss": total / max(count, 1)}
        if self.kind == "crossentropy":
            metrics["acc"] = correct / max(count, 1)
        if outputs:
            metrics.update(self.scorer(torch.cat(outputs).cpu().numpy()))
        if loop.train_losses:
            metrics["train_loss"] = sum(loop.train_losses) / len(loop.train_losses)
        return metrics
