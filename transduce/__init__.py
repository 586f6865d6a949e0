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
import os
import warnings
from typing import Any

# PyTorch's CPU allocator backs tensors of 2 MB and more with transparent huge pages when
# THP_MEM_ALLOC_ENABLE=1 (read at its first such allocation). Without it every large
# temporary (logits, their gradients, attention scores) is fresh memory that faults in
# 4 KB pages: on the machine here an exp() over 4,085 x 5,477 logits took 107 ms without
# and 42 ms with, and training the tiny transformer ran 13-20 % faster. Set unless the
# user has set it; it only matters where the kernel's THP mode is "madvise".
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

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
