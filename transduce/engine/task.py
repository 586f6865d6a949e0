"""What the loop trains: the :class:`Task` protocol. The loop knows this and nothing of
text or series; a task owns its data, how it is cut into batches and how it is validated.

A task may also carry state that must survive a resume beside the loop's own (a data
reader's exact position, for example): when it defines ``state_dict()`` /
``load_state_dict(state)``, the loop saves that dictionary (tensors, numbers and strings,
as ``torch.load(weights_only=True)`` reads back) in the trainer state of every checkpoint
and hands it back on resume.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from transduce.engine.objective import Objective
from transduce.engine.view import LoopView


class Batch(Protocol):
    ntokens: int

    def to(self, device: torch.device) -> Batch: ...


class Task(Protocol):
    model: torch.nn.Module
    objective: Objective  # what the loop runs (under DistributedDataParallel)

    def plan(self, epoch: int, rank: int, world: int) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` as index arrays, a pure function of the
        config, ``epoch`` and the rank (exact resume); every rank gets as many."""
        ...

    def batch(self, index: np.ndarray) -> Batch:
        """The training batch of the examples ``index``."""
        ...

    def validate(self, loop: LoopView) -> dict[str, Any]:
        """Metrics of the current model (``loss`` at least), the same on every rank."""
        ...
