"""The training loop: steps, schedules, clipping, accumulation, validation, checkpoints,
early stopping, budgets, logging and exact resume, for any task.

A task (the :class:`~transduce.engine.task.Task` protocol, implemented in
:mod:`transduce.tasks`) gives the model, the objective, its batches (``plan`` / ``batch``)
and ``validate(loop) -> metrics``; the loop knows nothing of text or series. What observes
or extends a run (progress, metrics.jsonl, TensorBoard, checkpoints, the array API) is a
:class:`~transduce.engine.callbacks.Callback`. Epochs count from 1 wherever they are shown
or written (progress, metrics.jsonl, the summary): the epoch being trained, or at its end
the one just finished. Under torchrun each process holds one loop on its shard of the batches;
the objective runs under DistributedDataParallel (:mod:`transduce.engine.parallel`) and
only rank 0 writes. A step takes ``train.accumulate_steps`` consecutive batches of the
plan (the last step of an epoch may take fewer).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transduce.config import Config, ConfigError
from transduce.device import cpu_has_bf16, resolve_device, resolve_precision
from transduce.engine import distributed, interrupt, parallel, state
from transduce.engine.callbacks import Callback, Checkpointer, NonFiniteError, kept
from transduce.engine.optim import Schedule, build_optimizer
from transduce.engine.progress import MetricsLog, Progress, planned_steps
from transduce.engine.task import Task
from transduce.engine.teacher import teacher_forcing_ratio
from transduce.engine.view import RunResult

__all__ = ["Loop", "RunResult", "default_callbacks"]

log = logging.getLogger("transduce.tasks.train")


def default_callbacks() -> list[Callback]:
    """What the ``train`` command runs with: progress, metrics/TensorBoard, checkpoints."""
    return [Progress(), MetricsLog(), Checkpointer()]


class Loop:
    """Trains ``task`` into ``run_dir``: :meth:`fit` (after :meth:`restore` on resume).
    ``callbacks`` default to :func:`default_callbacks`."""

    def __init__(
        self,
        cfg: Config,
        task: Task,
        run_dir: str | os.PathLike,
        rank: int = 0,
        world: int = 1,
        callbacks: list[Callback] | None = None,
    ):
        self.cfg, self.tcfg, self.task = cfg, cfg.train, task
        self.callbacks = default_callbacks() if callbacks is None else list(callbacks)
        if cfg.train.accumulate_steps < 1:
            raise ConfigError(f"train.accumulate_steps: {cfg.train.accumulate_steps} (need >= 1)")
        self.run_dir, self.rank, self.world = Path(run_dir), rank, world
        self.device = resolve_device(cfg.train.device)
        self.model = task.model.to(self.device)
        self.objective = task.objective
        self.objective.coins.manual_seed(self.tcfg.seed + 7 + 1009 * rank)  # each rank its own
        unused = self.tcfg.find_unused_parameters
        self.net = parallel.wrap(self.objective, self.device, world, unused)
        if self.tcfg.compile:  # validation and decoding stay eager
            self.net = torch.compile(self.net)
        self.precision, why = resolve_precision(self.tcfg.precision, self.device, self.model)
        if self.tcfg.precision == "auto" and rank == 0:
            log.info("train.precision=auto: %s on %s", self.precision, why)
        if self.precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16():
            log.warning(
                "train.precision=bf16 on a CPU without AVX512-BF16 or AMX: bf16 matmuls are "
                "emulated here and slower than fp32"
            )
        if self.precision == "fp16" and self.device.type == "cpu" and rank == 0:
            log.warning("train.precision=fp16 on a CPU: emulated and slow (meant for CUDA)")
        # fp16's narrow range: the loss is scaled up before backward and the gradients
        # unscaled before clipping; a step whose gradients overflowed is skipped and the
        # scale lowered (Micikevicius et al., 2018, "Mixed Precision Training").
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.optimizer = build_optimizer(self.tcfg, self.model.parameters())
        self._plan: tuple[int, list[np.ndarray]] | None = None  # (epoch, batches): see plan()
        self.steps_per_epoch = -(-len(self.plan(0)) // self.tcfg.accumulate_steps)
        total = planned_steps(self.tcfg, self.steps_per_epoch)
        self.schedule = Schedule(self.tcfg, self.optimizer, total)
        self.step = self.epoch = self.position = 0  # position: batches done in this epoch
        self.best: dict[str, Any] | None = None
        self.stale = 0  # validations without improvement
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.train_losses: list[float] = []  # since the last validation
        self.signal: int | None = None  # set when SIGINT/SIGTERM stopped the run
        self.stop_training = False  # a callback's request to stop after a validation
        self.ended_before: str | None = None  # a resumed run that had already ended

    @property
    def coins(self) -> torch.Generator:
        return self.objective.coins

    def autocast(self):
        """bf16 or fp16 autocast when configured (matmuls in 16 bits, the loss in fp32)."""
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        enabled = self.precision in ("bf16", "fp16")
        return torch.autocast(self.device.type, dtype=dtype, enabled=enabled)

    # ------------------------------------------------------------------ one update

    def update(self, *batches) -> tuple[float, int]:
        """One optimizer step over ``batches`` (this rank's micro-batches). Returns the
        global per-token loss and the global number of target tokens."""
        self.net.train()
        batches = [b.to(self.device) for b in batches]
        self.schedule.before_step(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        ratio = teacher_forcing_ratio(self.tcfg, self.step)
        mean, ntokens = parallel.backward_step(
            self.net, batches, ratio, self.world, self.autocast, self.scaler
        )
        self._check_finite(mean, "loss")  # global: every rank stops at the same step
        self.scaler.unscale_(self.optimizer)  # (a no-op unless fp16)
        if self.tcfg.clip_norm:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.clip_norm)
            if not self.scaler.is_enabled():  # fp16: the scaler skips an overflowed step
                self._check_finite(float(norm), "gradient norm")
        self.scaler.step(self.optimizer)  # optimizer.step(), unless fp16 gradients overflowed
        self.scaler.update()
        self.step += 1
        self.train_losses.append(mean)
        return mean, ntokens

    def validate(self) -> dict[str, Any]:
        """The task's validation metrics (the model in eval mode, no gradients)."""
        self.objective.eval()
        with torch.no_grad():
            return self.task.validate(self)

    def improved(self, metrics: dict[str, Any]) -> bool:
        key = self.tcfg.early_stop_metric
        if self.best is None:
            return True
        if key == "loss":
            return metrics["loss"] < self.best["loss"]
        return metrics[key] > self.best[key]

    # ------------------------------------------------------------------ loop

    def _check_finite(self, value: float, what: str) -> None:
        """Stop before a NaN/inf reaches the weights: the update is not applied, so the
        weights and the last checkpoint stay as they were."""
        if not math.isfinite(value):
            raise NonFiniteError(
                f"the {what} is {value} at step {self.step + 1}; stopped "
                f"before applying it, {kept(self.run_dir)}"
            )

    def emit(self, event: str, *args: Any) -> None:
        """Call hook ``event`` of every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def fit(self) -> RunResult:
        """Train until epochs / max_steps / max_seconds / early stopping, validating and
        checkpointing along the way. Continues from ``self.step`` after :meth:`restore`."""
        ended = self._budget_used() or ("early stopping" if self._patience_out() else None)
        self.ended_before = ended  # a resumed run that already finished trains nothing
        result = None
        self.emit("on_train_begin")
        try:
            if not ended:
                ended = self._epochs()
            if self.history and self.history[-1].get("step") != self.step and not self.signal:
                self._checkpoint()
            result = RunResult(
                self.run_dir,
                self.best or {},
                self.history[-1] if self.history else {},
                self.step,
                self.elapsed,
                self.history,
                self.signal,
                ended,
            )
        finally:
            self.emit("on_train_end", result)
        return result

    def _epochs(self) -> str | None:
        """The training steps; returns what ended the run (None: interrupted)."""
        start, n = time.perf_counter() - self.elapsed, self.tcfg.accumulate_steps
        while self.epoch < self.tcfg.epochs:
            plan, epoch = self.plan(self.epoch), self.epoch
            while self.epoch == epoch:
                chunk = plan[self.position : self.position + n]
                loss, ntok = self.update(*(self.task.batch(idx) for idx in chunk))
                # Advance the position before any checkpoint, so a resumed run starts
                # exactly where this one would go on.
                self.position += len(chunk)
                end_of_epoch = self.position == len(plan)
                if end_of_epoch:
                    self.epoch, self.position = self.epoch + 1, 0
                self.elapsed = time.perf_counter() - start
                self.emit("on_step_end", loss, ntok)
                if end_of_epoch:
                    self.emit("on_epoch_end")
                ended = self._budget_used()
                saved = bool(ended) or self._validation_due(end_of_epoch)
                if saved and self._checkpoint():
                    ended = ended or "early stopping"
                if ended:
                    return ended
                if self._interrupted():
                    if not saved:  # no validation: the state is what must not be lost
                        self._checkpoint(validate=False)
                    return None
        return "epochs"

    def _budget_used(self) -> str | None:
        t = self.tcfg
        if t.max_steps and self.step >= t.max_steps:
            return f"max_steps={t.max_steps}"
        used = bool(t.max_seconds and self.elapsed >= t.max_seconds)
        # Clocks differ between processes: all ranks stop when any rank's time is up.
        if t.max_seconds and (distributed.any_rank(used) if self.world > 1 else used):
            return f"max_seconds={t.max_seconds:g}"
        if self.epoch >= t.epochs:
            return f"epochs={t.epochs}"
        return None

    def _patience_out(self) -> bool:
        return self.tcfg.patience is not None and self.stale >= self.tcfg.patience

    def _interrupted(self) -> bool:
        """Whether SIGINT/SIGTERM asked to stop (on any rank: all ranks stop together)."""
        self.signal = interrupt.requested()
        if self.world > 1 and distributed.any_rank(self.signal is not None):
            self.signal = self.signal or int(signal.SIGTERM)
        return self.signal is not None

    def current_epoch(self) -> int:
        """The epoch being trained, from 1 (at an epoch's end, the one just finished):
        the one epoch number of progress lines, metrics.jsonl and the summary."""
        return self.epoch + (1 if self.position > 0 or self.step == 0 else 0)

    def _validation_due(self, end_of_epoch: bool) -> bool:
        every = self.tcfg.valid_every
        if every:
            return self.step % every == 0 or (end_of_epoch and self.epoch >= self.tcfg.epochs)
        return end_of_epoch

    def plan(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` (index arrays, the task's cut). The last plan is
        kept: the start counts epoch 0's batches and then trains on them (at 10M pairs a
        plan takes seconds), and a plan is a pure function of the epoch."""
        if self._plan is None or self._plan[0] != epoch:
            self._plan = None  # let the old plan go before the new one is built
            self._plan = (epoch, self.task.plan(epoch, self.rank, self.world))
        return self._plan[1]

    def _checkpoint(self, validate: bool = True) -> bool:
        """Validate, then save (the callbacks write metrics and the checkpoint); True when
        early stopping (or a callback) says stop. Without ``validate`` (an interruption)
        only the state is saved."""
        better = False
        if validate:
            self.emit("on_validation_begin")
            metrics = self.validate()
            self._check_finite(float(metrics["loss"]), "validation loss")
            self.train_losses = []
            better = self.improved(metrics)
            epoch = self.current_epoch()
            if better:
                self.best = {"step": self.step, "epoch": epoch, **metrics}
                self.stale = 0
            else:
                self.stale += 1
            self.schedule.after_validation(better)
            record = {
                "step": self.step,
                "epoch": epoch,
                "split": "valid",
                **metrics,
                "seconds": round(self.elapsed, 2),
            }
            self.history.append(record)
            self.emit("on_validation_end", record)
        self.emit("on_save", validate, better)
        return validate and (self._patience_out() or self.stop_training)

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        return state.capture(self)

    def restore(self, saved: dict[str, Any]) -> None:
        state.restore(self, saved)
