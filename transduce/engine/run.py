"""Starting or resuming a run, the one place for every task. :func:`start_run` resolves the
run directory and the config, enters torchrun's process group where there is one, seeds and
sets threads, and calls the task's body once per process (undoing a start that failed before
its first checkpoint); :func:`run` then writes a new run's config (and the task's own files)
or loads a resumed one's verified last checkpoint (:func:`transduce.engine.rundir.restore`),
and fits the loop under the SIGINT/SIGTERM handler."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from transduce.config import Config, save_config
from transduce.engine import distributed, interrupt, rundir
from transduce.engine.loop import Loop, RunResult

log = logging.getLogger("transduce.tasks.train")

# a task's training for one process: (config, run directory, resume, process context)
Body = Callable[[Config, Path, bool, distributed.Context], RunResult]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def start_run(
    cfg: Config | None, out: str | os.PathLike, resume: bool, overrides: list[str], body: Body
) -> RunResult:
    """Train ``cfg`` into run directory ``out`` through ``body``; with ``resume``, continue
    the run saved there (its own config.yaml, plus ``overrides``). Under torchrun every
    process calls this; rank 0 alone writes and reports."""
    run_dir = Path(out)
    created = not run_dir.exists()
    rank0 = os.environ.get("RANK", "0") == "0"
    begun = not rank0 or (run_dir / rundir.LOCK).exists()  # a start of ours was here
    with rundir.locked(run_dir, rank0):  # one process trains into a run at a time
        cfg, resume = rundir.start(cfg, run_dir, resume, list(overrides), begun=begun)
        try:
            with distributed.launch(cfg.train.device) as ctx:  # a no-op outside torchrun
                seed_everything(cfg.train.seed)
                if cfg.train.threads:
                    torch.set_num_threads(cfg.train.threads)
                if ctx.rank == 0:
                    run_dir.mkdir(parents=True, exist_ok=True)
                else:
                    logging.getLogger("transduce").setLevel(logging.WARNING)  # rank 0 reports
                return body(cfg, run_dir, resume, ctx)
        except BaseException:
            if rank0:
                rundir.undo_failed_start(run_dir, created)  # only before a first checkpoint
            raise


def run(
    loop: Loop,
    resume: bool,
    save: Callable[[Path], None] | None = None,
    summary: str = "",
) -> RunResult:
    """Start (or with ``resume`` continue) ``loop``'s run and fit it. Rank 0 writes:
    ``config.yaml``, what ``save(run_dir)`` writes, a fresh metrics.jsonl."""
    run_dir, write = loop.run_dir, loop.rank == 0
    if resume:
        rundir.restore(loop, run_dir, write=write)
    elif write:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(loop.cfg, run_dir / "config.yaml")
        if save is not None:
            save(run_dir)
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
    n_params = sum(p.numel() for p in loop.model.parameters() if p.requires_grad)
    log.info("%s; %.3fM parameters", summary, n_params / 1e6)
    with interrupt.graceful():
        return loop.fit()
