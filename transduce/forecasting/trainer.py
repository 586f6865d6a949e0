"""The series trainer: the generic :class:`~transduce.engine.loop.Loop` on a
:class:`~transduce.tasks.series.SeriesTask` (regression or fixed-length token outputs),
so schedules, clipping, accumulation, early stopping, atomic checkpoints, exact resume and
metrics.jsonl are the same loop's as for text."""

from __future__ import annotations

import os
from typing import Literal

import torch

from transduce.config import Config
from transduce.data.series import ArrayData
from transduce.engine.loop import Loop
from transduce.engine.objective import regression_loss
from transduce.tasks.series import SeriesTask

__all__ = ["Loss", "ValueTrainer", "regression_loss"]

Loss = Literal["mse", "mae", "huber", "crossentropy"]


class ValueTrainer(Loop):
    """Trains on :class:`ArrayData`; ``loss`` as :class:`SeriesTask` takes it. Teacher
    forcing follows ``train.teacher_forcing`` (below 1: scheduled sampling)."""

    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        train_data: ArrayData,
        valid_data: ArrayData,
        run_dir: str | os.PathLike,
        loss: Loss = "mse",
        scorer=None,
        rank: int = 0,
        world: int = 1,
        quantiles: list[float] | None = None,
    ):
        task = SeriesTask(cfg, model, train_data, valid_data, loss, scorer, quantiles)
        super().__init__(cfg, task, run_dir, rank, world)
        self.kind, self.valid_data = loss, valid_data
