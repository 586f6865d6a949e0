"""transduce: sequence-to-sequence learning on PyTorch.

The public API, all importable from ``transduce``::

    from transduce import load_config, train, Translator, DecodeOptions
    result = train(load_config("configs/tatoeba_char_ell.yaml"), "runs/ell")
    t = Translator.load("runs/ell")
    t.translate(["I am hungry."])
    t.decode(["I am hungry."], DecodeOptions(beam=5, nbest=3))

Lower down: ``build_model`` gives a :class:`Seq2SeqModel` (the torch module with the step
contract) that ``greedy``, ``beam_search`` and ``sample`` decode. The Keras-style array
API (``SimpleSeq2Seq``, ``Seq2Seq``, ``AttentionSeq2Seq``) is :mod:`transduce.estimators`;
its ``Seq2Seq`` is the estimator, not the torch module.

The names load on first use, so that :mod:`transduce.runtime` (no torch) can be imported
where PyTorch is not installed.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__version__ = "0.1.0"
_WHERE = {
    "PRESETS": "transduce.nn.models",
    "Config": "transduce.config",
    "ConfigError": "transduce.config",
    "DataError": "transduce.errors",
    "DecodeOptions": "transduce.inference.translate",
    "RunResult": "transduce.engine.loop",
    "Seq2SeqModel": "transduce.nn.models",
    "Translation": "transduce.inference.translate",
    "Translator": "transduce.inference.translate",
    "beam_search": "transduce.inference.search",
    "build_model": "transduce.nn.models",
    "evaluate": "transduce.inference.translate",
    "greedy": "transduce.inference.search",
    "list_recipes": "transduce.commands.recipes",
    "load_config": "transduce.config",
    "recipe_path": "transduce.commands.recipes",
    "sample": "transduce.inference.search",
    "train": "transduce.tasks.train",
}
__all__ = sorted([*_WHERE, "__version__"])


def __getattr__(name: str) -> Any:
    if name == "Seq2Seq":  # the torch module's earlier top-level name, kept working
        warnings.warn(
            "transduce.Seq2Seq is now transduce.Seq2SeqModel (the array API's estimator is "
            "transduce.estimators.Seq2Seq)",
            DeprecationWarning,
            stacklevel=2,
        )
        name = "Seq2SeqModel"
    if name not in _WHERE:
        raise AttributeError(f"module 'transduce' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])
