"""Starting or resuming a run, the one place for every task: a new run writes its config
(and the task's own files), a resumed one loads the verified last checkpoint
(:func:`transduce.engine.rundir.restore`); then the loop fits under the SIGINT/SIGTERM handler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from transduce.config import save_config
from transduce.engine import interrupt, rundir
from transduce.engine.loop import Loop, RunResult

log = logging.getLogger("transduce.tasks.train")


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
