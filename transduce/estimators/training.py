"""How the array API trains: the project's ValueTrainer (the generic loop on a series
task) plus what a Keras user expects of
``fit``: the compiled metrics on training and validation batches, one line per epoch, and
callbacks that may stop training."""

from __future__ import annotations

import sys
from typing import Any

import torch

from transduce.data.series import ValueBatch
from transduce.estimators.callbacks import Callback
from transduce.forecasting.trainer import ValueTrainer

# Metric names as Keras takes them -> what is computed.
METRICS = {"accuracy": "acc", "acc": "acc", "mae": "mae", "mean_absolute_error": "mae",
           "mse": "mse", "mean_squared_error": "mse"}  # fmt: skip
TOKEN_METRICS, VALUE_METRICS = {"acc"}, {"mae", "mse"}


def check_metrics(metrics: list[str] | None, tokens_out: bool) -> list[str]:
    """The metric names, checked against the kind of output (accuracy for classes,
    mae/mse for values)."""
    names = list(metrics or [])
    allowed = TOKEN_METRICS if tokens_out else VALUE_METRICS
    for name in names:
        if METRICS.get(name) not in allowed:
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


class EstimatorTrainer(ValueTrainer):
    """The ValueTrainer reporting to the estimator after each epoch's validation."""

    def setup(self, estimator, metrics: list[str], callbacks: list[Callback], verbose: int,
              has_valid: bool, history) -> None:  # fmt: skip
        self.estimator, self.callbacks, self.verbose = estimator, callbacks, verbose
        self.has_valid, self.keras_history = has_valid, history
        self.sums = {"train": MetricSums(metrics), "valid": MetricSums(metrics)}
        self.last_seconds = 0.0
        self.objective.observe = self._observe  # every forward, training and validation

    def _observe(self, batch: ValueBatch, outputs: torch.Tensor, correct) -> None:
        """Class outputs: correct tokens; values: the compiled mae/mse sums."""
        split = "train" if self.objective.training else "valid"
        if correct is not None:
            self.sums[split].add_tokens(correct, batch.tgt_out.numel())
        else:
            self.sums[split].add_values(outputs, batch.tgt_out)

    def validate(self) -> dict[str, Any]:
        self.sums["valid"].reset()
        return super().validate()

    def _log(self, record: dict[str, Any]) -> None:
        if record["split"] == "valid":
            self.history.append({"step": self.step, "epoch": self.epoch, **record})

    def _checkpoint(self, validate: bool = True) -> bool:
        stop = super()._checkpoint(validate)
        if not validate:  # an interruption: a checkpoint, no epoch to report
            return stop
        record = self.history[-1]
        logs = {"loss": record.get("train_loss", float("nan")), **self.sums["train"].means()}
        if self.has_valid:
            logs["val_loss"] = record["loss"]
            logs.update(self.sums["valid"].means("val_"))
        self.sums["train"].reset()
        epoch = len(self.keras_history.epoch)  # Keras counts each fit's epochs from 0
        self.keras_history.append(epoch, logs)
        if self.verbose:
            seconds, self.last_seconds = self.elapsed - self.last_seconds, self.elapsed
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"Epoch {epoch + 1}/{self.tcfg.epochs} - {seconds:.2f}s - {shown}",
                  file=sys.stdout, flush=True)  # fmt: skip
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)
        return stop or self.estimator.stop_training
