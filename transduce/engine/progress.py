"""What a run tells: metrics.jsonl, TensorBoard event files, and progress on the terminal.

Only rank 0 writes. On a terminal a tqdm bar whose total is the step at which the first
budget ends the run (``max_steps``, ``epochs`` or, estimated from the pace so far,
``max_seconds``), so its ETA is the run's; in a log file (no TTY) whole lines instead,
every ``log_every`` steps, so validation lines never glue onto a bar.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from transduce.config import ConfigError, TrainConfig


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        raise ConfigError(
            "train.tensorboard: true needs the tensorboard package "
            "(pip install -c constraints.txt 'transduce[tensorboard]')"
        ) from None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


class Logs:
    """metrics.jsonl (every record) and, with ``train.tensorboard``, event files under
    ``RUN/tensorboard`` (scalars ``train/loss``, ``train/lr``, ``train/tok_s``,
    ``valid/<metric>``). Nothing is written on ranks other than 0."""

    def __init__(self, tcfg: TrainConfig, run_dir: Path, rank: int):
        self.path, self.on = run_dir / "metrics.jsonl", rank == 0
        self.board = _tensorboard(run_dir) if (tcfg.tensorboard and self.on) else None

    def write(self, record: dict[str, Any]) -> None:
        if not self.on:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None:
            for key, value in record.items():
                if key not in ("step", "epoch", "split") and isinstance(value, int | float):
                    self.board.add_scalar(f"{record['split']}/{key}", value, record["step"])
            self.board.flush()

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def planned_steps(tcfg: TrainConfig, steps_per_epoch: int) -> int:
    """The step at which ``max_steps`` or ``epochs`` ends the run, whichever comes first."""
    by_epochs = tcfg.epochs * steps_per_epoch
    return min(tcfg.max_steps, by_epochs) if tcfg.max_steps else by_epochs


class Progress:
    """The bar (TTY) or the progress lines (no TTY) of rank 0."""

    def __init__(self, tcfg: TrainConfig, rank: int, steps_per_epoch: int, step: int):
        self.tcfg, self.planned = tcfg, planned_steps(tcfg, steps_per_epoch)
        self.on, self.rank0 = tcfg.progress and rank == 0, rank == 0
        self.tty = sys.stderr.isatty()
        self.start_step, self.start = step, time.perf_counter()
        self.tokens, self.window, self.losses = 0, time.perf_counter(), []
        self.bar = None
        if self.on and self.tty:
            self.bar = tqdm(total=self.planned, initial=step, unit="step", dynamic_ncols=True,
                            desc="train", mininterval=0.5)  # fmt: skip

    def total(self, step: int, elapsed: float) -> int:
        """The planned last step, ``max_seconds`` included (estimated from the pace)."""
        t = self.tcfg
        done = step - self.start_step
        if not t.max_seconds or done <= 0:
            return self.planned
        pace = (time.perf_counter() - self.start) / done  # seconds a step, this session
        return min(self.planned, step + max(0, int((t.max_seconds - elapsed) / max(pace, 1e-9))))

    def step(self, step: int, epoch: int, loss: float, ntok: int, elapsed: float) -> float:
        """Count one update; returns tokens/s since the last reset."""
        self.tokens += ntok
        self.losses.append(loss)
        rate = self.tokens / max(time.perf_counter() - self.window, 1e-9)
        if self.bar is not None:
            self.bar.total = self.total(step, elapsed)
            self.bar.update(1)
            self.bar.set_postfix(epoch=epoch, loss=f"{loss:.3f}", tok_s=f"{rate:,.0f}",
                                 refresh=False)  # fmt: skip
        elif self.on and self.tcfg.log_every and step % self.tcfg.log_every == 0:
            total = self.total(step, elapsed)
            pace = (time.perf_counter() - self.start) / max(step - self.start_step, 1)
            eta = timedelta(seconds=round(pace * max(total - step, 0)))
            print(f"train step {step}/{total} epoch {epoch} loss {loss:.3f} "
                  f"tok/s {rate:,.0f} eta {eta}", file=sys.stderr, flush=True)  # fmt: skip
        return rate

    def mean_loss(self) -> float:
        loss = float(np.mean(self.losses)) if self.losses else float("nan")
        self.losses = []
        return loss

    def reset(self) -> None:
        """After a checkpoint (validation time is not training) the tokens/s and the loss
        windows restart, as they do in a run resumed there."""
        self.tokens, self.window, self.losses = 0, time.perf_counter(), []

    def say(self, line: str) -> None:
        """A whole line on stdout from rank 0 (above the bar, if there is one)."""
        if self.rank0:
            tqdm.write(line)

    def note(self, line: str) -> None:
        """A line about the run itself (its end), where progress is shown."""
        if self.on:
            tqdm.write(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
