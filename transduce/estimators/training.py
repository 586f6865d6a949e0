"""How the array API trains: the project's loop on a series task, observed by one loop
callback (:class:`KerasReport`) that gives what a Keras user expects of ``fit``: the
compiled metrics on training and validation batches, one line per epoch, and Keras
callbacks that may stop training. Nothing here overrides the loop. And the check of the
compiled metric names."""

from __future__ import annotations

import sys
from typing import Any

import torch

from transduce.data.series import ValueBatch
from transduce.engine.callbacks import Callback
from transduce.engine.view import LoopView
from transduce.estimators.callbacks import Callback as KerasCallback
from transduce.estimators.callbacks import History

# Metric names as Keras takes them -> what is computed.
METRICS = {
    "accuracy": "acc",
    "acc": "acc",
    "mae": "mae",
    "mean_absolute_error": "mae",
    "mse": "mse",
    "mean_squared_error": "mse",
}
TOKEN_METRICS, VALUE_METRICS = {"acc"}, {"mae", "mse"}


def check_metrics(metrics: str | list[str] | None, tokens_out: bool) -> list[str]:
    """The metric names (one name alone is one metric, as in Keras), checked against the
    kind of output (accuracy for classes, mae/mse for values)."""
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics is not None and not isinstance(metrics, (list, tuple)):
        raise ValueError(f"metrics: a list of names such as ['mae'], got {metrics!r:.80}")
    names = list(metrics or [])
    allowed = TOKEN_METRICS if tokens_out else VALUE_METRICS
    for name in names:
        if not isinstance(name, str) or METRICS.get(name) not in allowed:
            kind = "class outputs" if tokens_out else "real-valued outputs"
            options = [k for k, v in METRICS.items() if v in allowed]
            raise ValueError(
                f"metrics: {name!r} is not available for {kind} ({', '.join(options)})"
            )
    return names


class MetricSums:
    """Running sums of the compiled metrics over batches, one per split."""

    def __init__(self, names: list[str]):
        self.names = names
        self.reset()

    def reset(self) -> None:
        self.sums = {name: 0.0 for name in self.names}
        self.count = 0

    def add_values(self, pred: torch.Tensor, gold: torch.Tensor) -> None:
        """``pred``, ``gold`` ``[B, T, D]``."""
        diff = pred.detach().float() - gold.float()
        for name in self.names:
            kind = METRICS[name]
            self.sums[name] += float(diff.abs().sum() if kind == "mae" else diff.pow(2).sum())
        self.count += gold.numel()

    def add_tokens(self, correct: torch.Tensor, n: int) -> None:
        for name in self.names:
            self.sums[name] += float(correct)
        self.count += n

    def means(self, prefix: str = "") -> dict[str, float]:
        return {prefix + k: v / max(self.count, 1) for k, v in self.sums.items()}


class KerasReport(Callback):
    """The loop callback of ``fit``: sums the compiled metrics over every forward
    (training and validation), and after each epoch's validation appends the epoch's logs
    to the ``History``, prints the Keras line (``verbose``) and runs the user's Keras
    callbacks, any of which may stop training (``estimator.stop_training``)."""

    def __init__(
        self,
        estimator,
        metrics: list[str],
        callbacks: list[KerasCallback],
        verbose: int,
        has_valid: bool,
        history: History,
    ):
        self.estimator, self.callbacks, self.verbose = estimator, callbacks, verbose
        self.has_valid, self.history = has_valid, history
        self.sums = {"train": MetricSums(metrics), "valid": MetricSums(metrics)}
        self.last_seconds = 0.0

    def on_train_begin(self, loop: LoopView) -> None:
        objective = loop.objective

        def observe(batch: ValueBatch, outputs: torch.Tensor, correct) -> None:
            """Class outputs: correct tokens; values: the compiled mae/mse sums."""
            split = "train" if objective.training else "valid"
            if correct is not None:
                self.sums[split].add_tokens(correct, batch.tgt_out.numel())
            else:
                self.sums[split].add_values(outputs, batch.tgt_out)

        objective.observe = observe  # every forward, training and validation

    def on_validation_begin(self, loop: LoopView) -> None:
        self.sums["valid"].reset()

    def on_validation_end(self, loop: LoopView, record: dict[str, Any]) -> None:
        logs = {"loss": record.get("train_loss", float("nan")), **self.sums["train"].means()}
        if self.has_valid:
            logs["val_loss"] = record["loss"]
            logs.update(self.sums["valid"].means("val_"))
        self.sums["train"].reset()
        epoch = len(self.history.epoch)  # Keras counts each fit's epochs from 0
        self.history.append(epoch, logs)
        if self.verbose:
            seconds, self.last_seconds = loop.elapsed - self.last_seconds, loop.elapsed
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(
                f"Epoch {epoch + 1}/{loop.tcfg.epochs} - {seconds:.2f}s - {shown}",
                file=sys.stdout,
                flush=True,
            )
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)
        loop.stop_training = loop.stop_training or self.estimator.stop_training
