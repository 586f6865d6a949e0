"""What the loop shows of itself to the code it calls: :class:`LoopView`, the running
loop as a callback's hooks and a task's ``validate`` see it, and :class:`RunResult`, what
a finished run returns.

They live apart from :mod:`transduce.engine.loop` so that the modules the loop imports
(callbacks, progress, the task protocol) can name them without importing the loop back:
the engine's imports form no cycle, not even one for type checkers only. The loop is a
:class:`LoopView` by its attributes (a structural type); nothing subclasses it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from transduce.config import Config, TrainConfig


class LoopView(Protocol):
    """The running loop, as callbacks and tasks read it. ``stop_training`` is the one
    attribute they may set (Keras's convention: the run ends after this validation)."""

    cfg: Config
    tcfg: TrainConfig  # cfg.train
    model: torch.nn.Module
    objective: Any  # the task's objective (transduce.engine.objective)
    optimizer: torch.optim.Optimizer
    run_dir: Path
    device: torch.device
    rank: int  # this process under torchrun (0 otherwise)
    world: int  # processes training together
    step: int  # optimizer updates done
    epoch: int  # epochs finished
    steps_per_epoch: int
    elapsed: float  # training seconds, across resumes
    best: dict[str, Any] | None  # the best validation's record so far
    train_losses: list[float]  # per-token losses since the last validation
    ended_before: str | None  # a resumed run that had already ended: what ended it
    stop_training: bool

    def current_epoch(self) -> int:
        """The epoch being trained, counted from 1 (the one just finished at its end)."""
        ...

    def autocast(self) -> AbstractContextManager:
        """The run's mixed precision for a forward pass (a no-op in fp32)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The resumable trainer state (collective under torchrun)."""
        ...


@dataclass
class RunResult:
    """What :meth:`transduce.engine.loop.Loop.fit` returns."""

    run_dir: Path
    best: dict[str, Any]
    last: dict[str, Any]
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    ended_by: str | None = None  # what ended it: max_steps, max_seconds, epochs, early stopping
