"""Keras-style callbacks for the array API's ``fit``: after every epoch each callback sees
the epoch's logs (``loss``, ``val_loss``, the compiled metrics) and may stop training.

    model.fit(X, Y, epochs=100, validation_split=0.1, callbacks=[
        EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
        ModelCheckpoint("runs/best_model", monitor="val_loss", save_best_only=True),
    ])
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from typing import Any

from transduce.estimators.checks import count


@dataclass
class History:
    """What ``fit`` returns: ``history["loss"]``, ``["val_loss"]`` and each compiled
    metric (``["acc"]``, ``["val_acc"]``, ...) per epoch, as Keras's ``History``."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)


class Callback:
    """Base class: override the hooks you need. ``self.model`` is the estimator; setting
    ``self.model.stop_training = True`` ends ``fit`` after this epoch."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        pass


class _Monitor(Callback):
    """Watches one log entry; ``mode`` ``auto`` minimises losses and errors, maximises
    accuracy."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        if not isinstance(monitor, str):
            raise ValueError(f"monitor: the name of a log entry ('val_loss', ...), got {monitor!r}")
        real = isinstance(min_delta, (int, float)) and not isinstance(min_delta, bool)
        if not real or not math.isfinite(min_delta):
            raise ValueError(f"min_delta: a finite number, got {min_delta!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if monitor.removeprefix("val_") in ("acc", "accuracy") else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def _value(self, logs: dict[str, float]) -> float:
        if self.monitor not in logs:
            known = ", ".join(logs) or "none"
            raise ValueError(
                f"{type(self).__name__}: monitor={self.monitor!r} is not in the epoch logs "
                f"(logged: {known}; val_* entries need validation data)"
            )
        return float(logs[self.monitor])

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    ``restore_best_weights`` puts back the best epoch's weights at the end."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ):
        super().__init__(monitor, mode, min_delta)
        count("patience", patience, 0)
        self.patience, self.restore_best_weights = patience, restore_best_weights
        self.wait, self.stopped_epoch, self.best_epoch, self._weights = 0, None, None, None

    def on_train_begin(self, logs=None) -> None:
        self.wait, self.stopped_epoch = 0, None
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = self._value(logs)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._weights = copy.deepcopy(self.model.net.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self.restore_best_weights and self._weights is not None:
            self.model.net.load_state_dict(self._weights)


class ModelCheckpoint(_Monitor):
    """Save the estimator (``save(filepath)``) after every epoch, or with
    ``save_best_only`` only when ``monitor`` improved. ``filepath`` may hold
    ``{epoch}`` and log names, e.g. ``"runs/ckpt_{epoch:02d}_{val_loss:.3f}"``."""

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        save_best_only: bool = False,
        mode: str = "auto",
    ):
        super().__init__(monitor, mode)
        self.filepath, self.save_best_only = os.fspath(filepath), save_best_only
        self.saved: list[str] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            value = self._value(logs)
            if not self._improved(value):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        self.saved.append(path)


def check_callbacks(callbacks: Any) -> list[Callback]:
    """``fit``'s callbacks: None, or a list of :class:`Callback` instances."""
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple)) or not all(
        isinstance(c, Callback) for c in callbacks
    ):
        raise ValueError(
            f"callbacks: a list of transduce.estimators.Callback instances, got {callbacks!r:.80}"
        )
    return list(callbacks)
