"""Checking a config: values against the dataclass field types and the ranges by name.

:func:`from_dict` builds a (nested) config dataclass from a mapping, rejecting unknown
keys, values of the wrong type, ``Literal`` choices not offered and numbers outside
:data:`RANGES`, each named by its dotted path (``model.decoder.hidden_size``).
The messages never echo a huge value back (:func:`cut`, :func:`clip`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration problem, named by the key's dotted path."""


def cut(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message
    never echoes a huge value back. A container is measured before it is printed."""
    if isinstance(value, dict | list | tuple) and _size(value, 1000) >= 1000:
        return f"<a {type(value).__name__} too large to show>"
    text = repr(value[: limit * 2] if isinstance(value, str | bytes) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (with ``...``)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(value: Any, cap: int) -> int:
    """Items in ``value`` counted through nested containers, stopping at ``cap``."""
    seen, stack = 0, [value]
    while stack and seen < cap:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return seen


def _check_value(tp: Any, value: Any, key: str) -> Any:
    """Return ``value`` checked (and lightly coerced: int -> float) against type ``tp``."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, key)
    if origin is Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(str, typing.get_args(tp)))
            raise ConfigError(f"{key}: {cut(value)} is not one of: {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(arg, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key}: {cut(value)} has the wrong type"
        )
    if origin is tuple:  # tuple[X, ...], written as a YAML list
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {cut(value)}")
        item = typing.get_args(tp)[0]
        return tuple(_check_value(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {cut(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {cut(value)}")
        return value
    if tp is float:
        if isinstance(value, str) and _EXPONENT.fullmatch(value):
            return float(value)  # 1e-3: YAML 1.1 (PyYAML) reads it as text, users as a number
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {cut(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {cut(value)}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}")  # pragma: no cover


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{clip(dotted)}: unknown key (known keys here: {known})")
        kwargs[key] = _check_range(key, _check_value(hints[key], value, dotted), dotted)
    return cls(**kwargs)


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")

# Ranges by field name (a name means one thing in every section): (low, high, low_open).
# Sizes have a ceiling so that an impossible model fails here, in one line, and not in
# the allocator; every float must be finite (train.lr=.inf trained to NaN).
_SIZE = (1, 1 << 14, False)  # a 16,384-wide GRU layer already holds 3 GB of weights
_COUNT = (1, 1 << 40, False)
_NONNEG = (0, 1 << 40, False)
_PROB = (0.0, 1.0, False)
RANGES: dict[str, tuple[float, float, bool]] = {
    **dict.fromkeys(("embed_size", "hidden_size", "readout_size", "d_model", "size", "heads",
                     "layers", "encoder_layers", "decoder_layers"), _SIZE),
    "ff_size": (1, 1 << 16, False),
    **dict.fromkeys(("batch_size", "vocab_size", "min_freq", "max_vocab", "max_src_len",
                     "max_tgt_len", "max_len", "max_input_len", "max_tokens", "horizon",
                     "lookback", "period", "accumulate_steps", "width", "max_positions",
                     "valid_max", "max_steps", "stride", "spm_sample"), _COUNT),
    **dict.fromkeys(("epochs", "warmup_steps", "keep_checkpoints", "valid_every", "log_every",
                     "patience", "plateau_patience", "src_col", "tgt_col", "limit",
                     "weight_decay", "lr_min", "holdout"), _NONNEG),
    **dict.fromkeys(("dropout", "attention_dropout", "embed_dropout", "output_dropout",
                     "teacher_forcing", "teacher_forcing_min", "label_smoothing",
                     "valid_fraction", "momentum", "adam_beta2", "plateau_factor"), _PROB),
    **dict.fromkeys(("lr", "max_seconds", "teacher_forcing_k", "max_len_ratio"),
                    (0.0, math.inf, True)),
    "clip_norm": (0.0, math.inf, False),  # 0 (or null): no clipping
    "threads": (0, 1024, False),  # 0: torch's default; 100,000 crashed torch (a segfault)
    **dict.fromkeys(("seed", "split_seed"), (0, (1 << 32) - 1, False)),  # numpy's seeds
}  # fmt: skip


def _check_range(name: str, value: Any, dotted: str) -> Any:
    """``value`` if it lies in RANGES[name] (and, a float, is finite), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{clip(dotted)}: {cut(value)} is not a finite number")
    if name not in RANGES:
        return value
    low, high, low_open = RANGES[name]
    if value < low or (low_open and value == low) or value > high:
        left = "(" if low_open else "["
        right = "inf)" if math.isinf(high) else f"{high:,}]" if high > 1 else f"{high:g}]"
        raise ConfigError(f"{clip(dotted)}: {cut(value)} is out of range {left}{low:g}, {right}")
    return value
