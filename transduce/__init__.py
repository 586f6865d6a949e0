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
"""

from __future__ import annotations

import warnings
from typing import Any

from transduce.config import Config, ConfigError, load_config
from transduce.data.corpus import DataError
from transduce.nn.models import PRESETS, Seq2SeqModel, build_model
from transduce.recipes import list_recipes, recipe_path
from transduce.search import beam_search, greedy, sample
from transduce.train import train
from transduce.trainer import RunResult
from transduce.translate import DecodeOptions, Translation, Translator, evaluate

__version__ = "0.1.0"
__all__ = [
    "PRESETS",
    "Config",
    "ConfigError",
    "DataError",
    "DecodeOptions",
    "RunResult",
    "Seq2SeqModel",
    "Translation",
    "Translator",
    "__version__",
    "beam_search",
    "build_model",
    "evaluate",
    "greedy",
    "list_recipes",
    "load_config",
    "recipe_path",
    "sample",
    "train",
]


def __getattr__(name: str) -> Any:
    """``transduce.Seq2Seq``: the torch module's earlier top-level name, kept working."""
    if name == "Seq2Seq":
        warnings.warn(
            "transduce.Seq2Seq is now transduce.Seq2SeqModel (the array API's estimator is "
            "transduce.estimators.Seq2Seq)",
            DeprecationWarning,
            stacklevel=2,
        )
        return Seq2SeqModel
    raise AttributeError(f"module 'transduce' has no attribute {name!r}")
