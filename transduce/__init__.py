"""transduce: sequence-to-sequence learning on PyTorch.

The public API in brief::

    from transduce import load_config, train, Translator
    result = train(load_config("configs/tatoeba_char_ell.yaml"), "runs/ell")
    Translator.load("runs/ell").translate(["I am hungry."])
"""

from transduce.config import Config, ConfigError, load_config
from transduce.data.corpus import DataError
from transduce.nn.models import PRESETS, Seq2Seq, build_model
from transduce.search import greedy
from transduce.train import train
from transduce.trainer import RunResult
from transduce.translate import Translator, evaluate

__version__ = "0.1.0"
__all__ = [
    "PRESETS",
    "Config",
    "ConfigError",
    "DataError",
    "RunResult",
    "Seq2Seq",
    "Translator",
    "build_model",
    "evaluate",
    "greedy",
    "load_config",
    "train",
]
