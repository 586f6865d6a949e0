"""The text trainer: the generic :class:`~transduce.engine.loop.Loop` on a
:class:`~transduce.tasks.text.TextTask` (kept under this name for its callers)."""

from __future__ import annotations

import os

from transduce.config import Config
from transduce.data.batches import ParallelData
from transduce.data.pipeline import TextPipeline
from transduce.engine.loop import Loop, RunResult, resolve_device
from transduce.engine.teacher import teacher_forcing_ratio
from transduce.nn.models import Seq2Seq
from transduce.tasks.text import TextTask

__all__ = ["RunResult", "Trainer", "resolve_device", "teacher_forcing_ratio"]


class Trainer(Loop):
    """Trains a text model: ``Trainer(cfg, model, pipeline, train, valid, run_dir)``."""

    def __init__(
        self,
        cfg: Config,
        model: Seq2Seq,
        pipeline: TextPipeline,
        train_data: ParallelData,
        valid_data: ParallelData,
        run_dir: str | os.PathLike,
        rank: int = 0,
        world: int = 1,
        valid_refs: list[str] | None = None,
    ):
        task = TextTask(cfg, model, pipeline, train_data, valid_data, valid_refs)
        super().__init__(cfg, task, run_dir, rank, world)
        self.pipeline, self.valid_data = pipeline, valid_data
