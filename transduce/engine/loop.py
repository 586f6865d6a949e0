"""The training loop: steps, schedules, clipping, accumulation, validation, checkpoints,
early stopping, budgets, logging and exact resume, for any task.

A task (:mod:`transduce.tasks`) gives the model, the objective, the training data
(``batch_order`` / ``batch``) and ``validate(loop) -> metrics``; the loop knows nothing of
text or series. Under torchrun each process holds one loop on its shard of the batches;
the objective runs under DistributedDataParallel (:mod:`transduce.engine.parallel`) and
only rank 0 writes. A step takes ``train.accumulate_steps`` consecutive batches of the
plan (the last step of an epoch may take fewer).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transduce import checkpoint as ckpt
from transduce import distributed, interrupt
from transduce.config import Config, ConfigError
from transduce.engine import parallel, state
from transduce.engine.progress import Logs, Progress, planned_steps
from transduce.engine.teacher import teacher_forcing_ratio
from transduce.optim import Schedule, build_optimizer

log = logging.getLogger("transduce.train")


@dataclass
class RunResult:
    run_dir: Path
    best: dict[str, Any]
    last: dict[str, Any]
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    ended_by: str | None = None  # what ended it: max_steps, max_seconds, epochs, early stopping


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA device is available here (use cpu or auto)")
    return torch.device(name)


class Loop:
    """Trains ``task`` into ``run_dir``: :meth:`fit` (after :meth:`restore` on resume)."""

    def __init__(self, cfg: Config, task, run_dir: str | os.PathLike, rank=0, world=1):
        self.cfg, self.tcfg, self.task = cfg, cfg.train, task
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
        if self.tcfg.precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16():
            log.warning(
                "train.precision=bf16 on a CPU without AVX512-BF16 or AMX: bf16 matmuls are "
                "emulated here and slower than fp32"
            )
        self.optimizer = build_optimizer(self.tcfg, self.model.parameters())
        self.train_data = task.train_data
        self.steps_per_epoch = -(-len(self._batches(0)) // self.tcfg.accumulate_steps)
        total = planned_steps(self.tcfg, self.steps_per_epoch)
        self.schedule = Schedule(self.tcfg, self.optimizer, total)
        self.step = self.epoch = self.position = 0  # position: batches done in this epoch
        self.best: dict[str, Any] | None = None
        self.stale = 0  # validations without improvement
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.train_losses: list[float] = []  # since the last validation
        self.signal: int | None = None  # set when SIGINT/SIGTERM stopped the run
        self.logs: Logs | None = None
        self.progress: Progress | None = None

    @property
    def coins(self) -> torch.Generator:
        return self.objective.coins

    def autocast(self):
        """bf16 autocast when configured (matmuls in bf16, the loss in fp32)."""
        enabled = self.tcfg.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    # ------------------------------------------------------------------ one update

    def update(self, *batches) -> tuple[float, int]:
        """One optimizer step over ``batches`` (this rank's micro-batches). Returns the
        global per-token loss and the global number of target tokens."""
        self.net.train()
        batches = [b.to(self.device) for b in batches]
        self.schedule.before_step(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        ratio = teacher_forcing_ratio(self.tcfg, self.step)
        mean, ntokens = parallel.backward_step(self.net, batches, ratio, self.world, self.autocast)
        if self.tcfg.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tcfg.clip_norm)
        self.optimizer.step()
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

    def fit(self) -> RunResult:
        """Train until epochs / max_steps / max_seconds / early stopping, validating and
        checkpointing along the way. Continues from ``self.step`` after :meth:`restore`."""
        self.logs = Logs(self.tcfg, self.run_dir, self.rank)
        self.progress = progress = Progress(self.tcfg, self.rank, self.steps_per_epoch, self.step)
        ended = self._budget_used() or ("early stopping" if self._patience_out() else None)
        resumed_done = bool(ended)
        if ended:  # a resumed run that already finished: say so, train nothing
            progress.note(f"this run already ended ({ended}) at step {self.step}: nothing to do")
        try:
            if not ended:
                ended = self._epochs(progress)
            if self.history and self.history[-1].get("step") != self.step and not self.signal:
                self._checkpoint()
        finally:
            progress.close()
            self.logs.close()
        if ended and self.best and not resumed_done:
            shown = " ".join(f"{k}={_short(v)}" for k, v in self.best.items() if k != "epoch")
            progress.note(f"stopped by {ended}; best checkpoint {self.run_dir / 'best'}: {shown}")
        return RunResult(
            self.run_dir, self.best or {}, self.history[-1] if self.history else {},
            self.step, self.elapsed, self.history, self.signal, ended,
        )  # fmt: skip

    def _epochs(self, progress: Progress) -> str | None:
        """The training steps; returns what ended the run (None: interrupted)."""
        start, n = time.perf_counter() - self.elapsed, self.tcfg.accumulate_steps
        while self.epoch < self.tcfg.epochs:
            plan, epoch = self._batches(self.epoch), self.epoch
            while self.epoch == epoch:
                chunk = plan[self.position : self.position + n]
                loss, ntok = self.update(*(self.train_data.batch(idx) for idx in chunk))
                # Advance the position before any checkpoint, so a resumed run starts
                # exactly where this one would go on.
                self.position += len(chunk)
                end_of_epoch = self.position == len(plan)
                if end_of_epoch:
                    self.epoch, self.position = self.epoch + 1, 0
                self.elapsed = time.perf_counter() - start
                self._report(progress, loss, ntok)
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

    def _report(self, progress: Progress, loss: float, ntok: int) -> None:
        rate = progress.step(self.step, self.current_epoch(), loss, ntok, self.elapsed)
        if self.tcfg.log_every and self.step % self.tcfg.log_every == 0:
            lr = self.optimizer.param_groups[0]["lr"]
            self._log({"split": "train", "loss": progress.mean_loss(), "tok_s": rate, "lr": lr})

    def current_epoch(self) -> int:
        """The epoch being trained, from 1 (the one just finished at its end); the records
        in metrics.jsonl count finished epochs instead."""
        return self.epoch + (1 if self.position > 0 or self.step == 0 else 0)

    def _validation_due(self, end_of_epoch: bool) -> bool:
        every = self.tcfg.valid_every
        if every:
            return self.step % every == 0 or (end_of_epoch and self.epoch >= self.tcfg.epochs)
        return end_of_epoch

    def _batches(self, epoch: int) -> list[np.ndarray]:
        t = self.tcfg
        return self.train_data.batch_order(
            t.batch_size, t.seed, epoch, t.bucket, rank=self.rank, world=self.world,
            max_tokens=t.max_tokens, by=t.bucket_by,
        )  # fmt: skip

    def _checkpoint(self, validate: bool = True) -> bool:
        """Validate, write metrics and a checkpoint; True when early stopping says stop.
        Without ``validate`` (an interruption) only the checkpoint is written."""
        better = False
        if validate:
            metrics = self.validate()
            self.train_losses = []
            record = {"split": "valid", **metrics, "seconds": round(self.elapsed, 2)}
            better = self.improved(metrics)
            if better:
                self.best = {"step": self.step, "epoch": self.epoch, **metrics}
                self.stale = 0
            else:
                self.stale += 1
            self.schedule.after_validation(better)
            self._log(record)
        snapshot = self.state_dict()  # on every rank: it gathers the ranks' RNG states
        if self.rank == 0:
            meta = {"step": str(self.step), "epoch": str(self.epoch)}
            if self.tcfg.keep_checkpoints and validate:
                ckpt.save_weights(self.model, ckpt.step_path(self.run_dir, self.step), meta)
                ckpt.prune_steps(self.run_dir, self.tcfg.keep_checkpoints)
            ckpt.write_checkpoint(self.run_dir, self.model, snapshot, meta, best=better)
        if self.progress is not None:
            self.progress.reset()
        return validate and self._patience_out()

    def _log(self, record: dict[str, Any]) -> None:
        record = {"step": self.step, "epoch": self.epoch, **record}
        if record["split"] == "valid":
            self.history.append(record)
            if self.rank == 0:
                shown = {**record, "epoch": self.current_epoch()}
                line = " ".join(f"{k}={_short(v)}" for k, v in shown.items() if k != "split")
                self.progress.say(line) if self.progress else print(line, flush=True)
        if self.logs is not None:
            self.logs.write(record)

    # ------------------------------------------------------------------ resume

    def state_dict(self) -> dict[str, Any]:
        return state.capture(self)

    def restore(self, saved: dict[str, Any]) -> None:
        state.restore(self, saved)


def _short(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
