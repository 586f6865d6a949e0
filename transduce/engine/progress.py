"""What a run tells, as loop callbacks: metrics.jsonl, TensorBoard event files, and
progress on the terminal (stderr).

Only rank 0 writes. On a terminal a tqdm bar whose total is the step at which the first
budget ends the run (``max_steps``, ``epochs`` or, estimated from the pace so far,
``max_seconds``), so its ETA is the run's; in a log file (no TTY) whole lines instead,
every ``log_every`` steps, so validation lines never glue onto a bar.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from transduce.config import ConfigError, TrainConfig
from transduce.engine.callbacks import Callback
from transduce.engine.view import LoopView, RunResult


def _tensorboard(run_dir: Path, step: int):
    """The event writer; resumed at ``step``, it hides what the run wrote past that step
    before it was killed (TensorBoard's ``purge_step``), as metrics.jsonl is cut there."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        raise ConfigError(
            "train.tensorboard: true needs the tensorboard package "
            "(pip install -c constraints.txt 'transduce[tensorboard]')"
        ) from None
    return SummaryWriter(
        log_dir=str(run_dir / "tensorboard"), purge_step=step + 1 if step else None
    )


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: a non-finite metric (a score a task could not
    compute) is written as null, so metrics.jsonl stays strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class MetricsLog(Callback):
    """metrics.jsonl (a ``train`` record every ``log_every`` steps: the mean loss since
    the previous one, tokens/s, the learning rate; a ``valid`` record per validation) and,
    with ``train.tensorboard``, event files under ``RUN/tensorboard`` (scalars
    ``train/loss``, ``train/lr``, ``train/tok_s``, ``valid/<metric>``). ``epoch`` counts
    from 1, as the progress lines and the final summary do. Rank 0 only."""

    def on_train_begin(self, loop: LoopView) -> None:
        self.path, self.on = loop.run_dir / "metrics.jsonl", loop.rank == 0
        tb = loop.tcfg.tensorboard and self.on
        self.board = _tensorboard(loop.run_dir, loop.step) if tb else None
        self.meter = Meter()

    def on_step_end(self, loop: LoopView, loss: float, ntokens: int) -> None:
        self.meter.add(loss, ntokens)
        every = loop.tcfg.log_every
        if every and loop.step % every == 0 and self.meter.losses:
            lr = loop.optimizer.param_groups[0]["lr"]
            loss = float(np.mean(self.meter.losses))
            self.meter.losses = []
            self.write(loop, {"split": "train", "loss": loss, "tok_s": self.meter.rate(), "lr": lr})

    def on_validation_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        self.write(loop, record)

    def on_save(self, loop: LoopView, validated: bool, better: bool) -> None:
        self.meter.reset()

    def write(self, loop: LoopView, record: dict[str, Any]) -> None:
        if not self.on:
            return
        record = {"step": loop.step, "epoch": loop.current_epoch(), **record}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({k: _finite(v) for k, v in record.items()}) + "\n")
        if self.board is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "split") and isinstance(value, int | float):
                    self.board.add_scalar(f"{record['split']}/{key}", value, record["step"])
            self.board.flush()

    def on_train_end(self, loop: LoopView, result: RunResult | None) -> None:
        if self.board is not None:
            self.board.close()


class Meter:
    """Training tokens and losses since the last checkpoint (validation time is not
    training, so tokens/s restarts there, as it does in a run resumed there)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.tokens, self.start, self.losses = 0, time.perf_counter(), []

    def add(self, loss: float, ntokens: int) -> None:
        self.tokens += ntokens
        self.losses.append(loss)

    def rate(self) -> float:
        return self.tokens / max(time.perf_counter() - self.start, 1e-9)


def planned_steps(tcfg: TrainConfig, steps_per_epoch: int) -> int:
    """The step at which ``max_steps`` or ``epochs`` ends the run, whichever comes first."""
    by_epochs = tcfg.epochs * steps_per_epoch
    return min(tcfg.max_steps, by_epochs) if tcfg.max_steps else by_epochs


class Progress(Callback):
    """The bar (TTY) or the progress lines (no TTY) of rank 0, its validation lines and
    how the run ended, all on stderr: stdout is left to the command's result."""

    def on_train_begin(self, loop: LoopView) -> None:
        self.begin(loop.tcfg, loop.rank, loop.steps_per_epoch, loop.step)
        if loop.ended_before:
            ended = f"this run already ended ({loop.ended_before}) at step {loop.step}"
            self.note(f"{ended}: nothing to train")

    def begin(self, tcfg: TrainConfig, rank: int, steps_per_epoch: int, step: int) -> None:
        self.tcfg, self.planned = tcfg, planned_steps(tcfg, steps_per_epoch)
        self.on, self.rank0 = tcfg.progress and rank == 0, rank == 0
        self.start_step, self.start, self.meter = step, time.perf_counter(), Meter()
        self.bar = None
        if self.on and sys.stderr.isatty():
            self.bar = tqdm(
                total=self.planned,
                initial=step,
                unit="step",
                dynamic_ncols=True,
                desc="train",
                mininterval=0.5,
            )

    def total(self, step: int, elapsed: float) -> int:
        """The planned last step, ``max_seconds`` included (estimated from the pace)."""
        t = self.tcfg
        done = step - self.start_step
        if not t.max_seconds or done <= 0:
            return self.planned
        pace = (time.perf_counter() - self.start) / done  # seconds a step, this session
        return min(self.planned, step + max(0, int((t.max_seconds - elapsed) / max(pace, 1e-9))))

    def on_step_end(self, loop: LoopView, loss: float, ntokens: int) -> None:
        self.meter.tokens += ntokens
        step, epoch, rate = loop.step, loop.current_epoch(), self.meter.rate()
        if self.bar is not None:
            self.bar.total = self.total(step, loop.elapsed)
            self.bar.update(1)
            self.bar.set_postfix(
                epoch=epoch, loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}", refresh=False
            )
        elif self.on and self.tcfg.log_every and step % self.tcfg.log_every == 0:
            total = self.total(step, loop.elapsed)
            pace = (time.perf_counter() - self.start) / max(step - self.start_step, 1)
            eta = timedelta(seconds=round(pace * max(total - step, 0)))
            self.say(
                f"train step {step}/{total} epoch {epoch} loss {loss:.3f} "
                f"tok/s {rate:,.0f} eta {eta}"
            )

    def on_validation_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        shown = {"step": loop.step, "epoch": loop.current_epoch(), **record}
        self.say(" ".join(f"{k}={short(v)}" for k, v in shown.items() if k != "split"))

    def on_save(self, loop: LoopView, validated: bool, better: bool) -> None:
        self.meter.reset()

    def on_train_end(self, loop: LoopView, result: RunResult | None) -> None:
        if self.bar is not None:
            self.bar.close()
        if result is not None and result.ended_by and result.best and not loop.ended_before:
            best = " ".join(f"{k}={short(v)}" for k, v in result.best.items() if k != "epoch")
            self.note(
                f"stopped by {result.ended_by}; best checkpoint {loop.run_dir / 'best'}: {best}"
            )

    def say(self, line: str) -> None:
        """A whole line on stderr from rank 0 (above the bar, if there is one)."""
        if self.rank0:
            tqdm.write(line, file=sys.stderr)

    def note(self, line: str) -> None:
        """A line about the run itself (its end), where progress is shown."""
        if self.on:
            tqdm.write(line, file=sys.stderr)


def short(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
