"""The series task: real-valued (or fixed-length token) outputs on :class:`ArrayData`.

Losses ``mse``/``mae``/``huber`` for values ``[B, T, D]``, ``crossentropy`` for class
outputs ``[B, T]`` (id 0 is a class, not padding). Validation scores what inference does:
the free roll-out for values, the teacher-forced accuracy for tokens; ``train_loss`` is the
mean training loss since the previous validation (the Keras ``loss``). A ``scorer`` sees
the rolled-out validation outputs ``[N, T, D]`` and adds its metrics (a forecasting run's
sMAPE / MASE / OWA in the data's units, and with quantile outputs MSIS / ACD / coverage /
pinball of the raw quantile intervals).

With ``quantiles`` (the probability of each output column, the median first) the loss is
the pinball loss summed over the columns (Koenker & Bassett 1978; the multi-quantile
objective of Wen et al. 2017, "A Multi-Horizon Quantile Recurrent Forecaster"), doubled
so that the median's term is the MAE of the point forecast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from transduce.config import Config
from transduce.data.windows import ArrayData
from transduce.engine.objective import Objective, regression_loss
from transduce.engine.view import LoopView


def pinball_loss(pred: torch.Tensor, gold: torch.Tensor, quantiles: list[float]) -> torch.Tensor:
    """Summed ``2 x`` pinball loss of ``pred [B, T, Q]`` (one column per quantile) against
    ``gold [B, T, 1]``."""
    q = torch.tensor(quantiles, dtype=torch.float32, device=pred.device)  # [Q]
    diff = gold.float() - pred.float()  # [B, T, Q]
    return 2 * torch.maximum(q * diff, (q - 1) * diff).sum()


class QuantileObjective(Objective):
    """The series objective with a quantile head: pinball loss over every column."""

    def __init__(self, model: torch.nn.Module, quantiles: list[float]):
        super().__init__(model, "mae")
        self.quantiles = list(quantiles)

    def forward(self, batch, ratio: float = 1.0) -> tuple[torch.Tensor, None]:
        return pinball_loss(self.outputs(batch, ratio), batch.tgt_out, self.quantiles), None


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
        quantiles: list[float] | None = None,
    ):
        self.cfg, self.model, self.kind, self.scorer = cfg, model, loss, scorer
        self.train_data, self.valid_data = train_data, valid_data
        self.quantiles = quantiles
        self.objective = (
            QuantileObjective(model, quantiles) if quantiles else Objective(model, loss)
        )

    def _loss(self, out: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        if self.quantiles:
            return pinball_loss(out, gold, self.quantiles)
        return regression_loss(out, gold, self.kind)

    def plan(self, epoch: int, rank: int, world: int) -> list[np.ndarray]:
        """Shuffled windows, ``train.batch_size`` a batch."""
        t = self.cfg.train
        return self.train_data.batch_order(t.batch_size, t.seed, epoch, rank=rank, world=world)

    def batch(self, index: np.ndarray):
        return self.train_data.batch(index)

    def validate(self, loop: LoopView) -> dict[str, Any]:
        total, correct, count, outputs = 0.0, 0, 0, []
        ratio = 1.0 if self.kind == "crossentropy" else 0.0  # values: the free roll-out
        for batch in self.valid_data.iter_batches(self.cfg.train.batch_size):
            batch = batch.to(loop.device)
            with loop.autocast():
                if self.scorer is not None and self.kind != "crossentropy":
                    outputs.append(self.objective.outputs(batch, ratio).float())
                    loss, right = self._loss(outputs[-1], batch.tgt_out), None
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
