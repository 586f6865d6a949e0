"""PyTorch-free inference over an ONNX export (``transduce export onnx``).

onnxruntime runs the graphs, numpy does the rest, and the search is the one in
:mod:`transduce.inference.searchcore` that :mod:`transduce.inference.search` runs on torch::

    from transduce.runtime import Translator
    Translator.load("exported/").translate(["ein Hund läuft."])

``python -m transduce.runtime translate --model DIR`` reads stdin and writes stdout.
Nothing here imports torch (a test runs it where ``import torch`` fails).
"""

from transduce.runtime.model import ExportError, OnnxModel, read_manifest
from transduce.runtime.translate import DecodeOptions, Translation, Translator, rollout

__all__ = [
    "DecodeOptions",
    "ExportError",
    "OnnxModel",
    "Translation",
    "Translator",
    "read_manifest",
    "rollout",
]
