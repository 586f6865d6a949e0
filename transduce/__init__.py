"""transduce: sequence-to-sequence learning on PyTorch.

The public API in brief::

    from transduce import load_config, train, Translator
    result = train(load_config("configs/tatoeba_char_ell.yaml"), "runs/ell")
    Translator.load("runs/ell").translate(["I am hungry."])

The names below load on first use, so that ``transduce.runtime`` (no torch) can be
imported where PyTorch is not installed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
_WHERE = {
    "PRESETS": "transduce.nn.models",
    "Config": "transduce.config",
    "ConfigError": "transduce.config",
    "DataError": "transduce.data.corpus",
    "RunResult": "transduce.trainer",
    "Seq2Seq": "transduce.nn.models",
    "Translator": "transduce.translate",
    "build_model": "transduce.nn.models",
    "evaluate": "transduce.translate",
    "greedy": "transduce.search",
    "load_config": "transduce.config",
    "train": "transduce.train",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'transduce' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
