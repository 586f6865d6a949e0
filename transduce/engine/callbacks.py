"""The training loop's extension points: what observes or extends a run is a
:class:`Callback`, never a subclass of the loop.

Why Keras-style methods (``on_step_end``, ``on_validation_end``, ...) rather than minGPT's
``add_callback("on_batch_end", fn)``: an observer of a run usually holds state across
events (a progress bar, an open TensorBoard writer, the sums of a metric), which one object
with several methods keeps in one place; a misspelt method is caught by the base class's
signature and a type checker, where a misspelt event string would silently never fire;
and the array API (:mod:`transduce.estimators`) already speaks Keras to its users.

The loop calls every hook on every rank (under torchrun), in the order the callbacks were
given; a callback that writes files does so on rank 0 only. A callback may end the run
after a validation by setting ``loop.stop_training = True`` (Keras's convention).

Built in: :class:`~transduce.engine.progress.Progress` (the bar or progress lines and the
validation lines, on stderr), :class:`~transduce.engine.progress.MetricsLog`
(metrics.jsonl and TensorBoard) and :class:`Checkpointer` (the resumable checkpoint after
every validation and on interruption);
:func:`transduce.engine.loop.default_callbacks` gives all three.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from transduce.config import to_dict
from transduce.engine import averaging
from transduce.engine import checkpoint as ckpt
from transduce.engine.view import LoopView, RunResult


class NonFiniteError(ValueError):
    """Training produced a NaN or infinite loss (or weights): the run stops, the last
    checkpoint written before stays the run's ``last``/``best``."""


def kept(run_dir: Path) -> str:
    """What a run stopped by a non-finite value keeps, and what to change."""
    last = run_dir / "last"
    where = f"the last good checkpoint stays {last}" if last.exists() else "no checkpoint yet"
    return f"{where} (lower train.lr or set train.clip_norm)"


class Callback:
    """Override the hooks you need; each receives the running loop
    (:class:`~transduce.engine.view.LoopView`: what a callback may read of it)."""

    def on_train_begin(self, loop: LoopView) -> None:
        """Before the first step of this session (after a resume's restore)."""

    def on_step_end(self, loop: LoopView, loss: float, ntokens: int) -> None:
        """After each optimizer update: its global per-token ``loss`` and target tokens."""

    def on_epoch_end(self, loop: LoopView) -> None:
        """After the last step of an epoch (``loop.epoch`` already counts it)."""

    def on_validation_begin(self, loop: LoopView) -> None:
        """Before the task validates."""

    def on_validation_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        """After a validation: ``record`` is the metrics.jsonl row (``step``, ``epoch``,
        ``split="valid"``, the task's metrics, ``seconds``); ``loop.best`` is updated."""

    def on_save(self, loop: LoopView, validated: bool, better: bool) -> None:
        """The run's state is due to be saved: after each validation (``validated``;
        ``better`` when it is the best so far) and, unvalidated, when interrupted."""

    def on_train_end(self, loop: LoopView, result: RunResult | None) -> None:
        """At the end of the session; ``result`` is None when it ended with an error."""


class Checkpointer(Callback):
    """Writes the resumable checkpoint (weights + trainer state, ``last``, ``best`` when
    better) and, with ``train.keep_checkpoints``, the kept weights of each validation.
    Non-finite weights are never written: the run stops and the checkpoint before stays."""

    def on_save(self, loop: LoopView, validated: bool, better: bool) -> None:
        if not all(bool(torch.isfinite(p).all()) for p in loop.model.parameters()):
            raise NonFiniteError(
                f"the weights became non-finite by step {loop.step}; stopped, " + kept(loop.run_dir)
            )
        snapshot = loop.state_dict()  # on every rank: it gathers the ranks' RNG states
        if loop.rank != 0:
            return
        meta = {"step": str(loop.step), "epoch": str(loop.current_epoch())}
        # the config trained with: a resume refuses a config.yaml edited since (compat.py)
        meta["config"] = json.dumps(to_dict(loop.cfg), sort_keys=True)
        keep = loop.tcfg.keep_checkpoints
        if keep and validated:
            ckpt.save_weights(loop.model, averaging.step_path(loop.run_dir, loop.step), meta)
            averaging.prune_steps(loop.run_dir, keep)
        ckpt.write_checkpoint(loop.run_dir, loop.model, snapshot, meta, best=better)
