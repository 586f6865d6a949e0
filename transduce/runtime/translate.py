"""Text in, text out over an ONNX export, with the search of :mod:`transduce.inference.searchcore`.

``Translator.load(DIR2).translate([...])`` is :class:`transduce.inference.translate.Translator`'s
text path (:class:`transduce.inference.textdecoder.SearchDecoder`, shared) over onnxruntime: the
same
options, search and results, and no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from transduce.data.records import pack_fields
from transduce.data.tokenizers import build_tokenizer
from transduce.data.vocab import Vocab
from transduce.inference import searchcore as core
from transduce.inference.decoding import DecodeOptions, Translation
from transduce.inference.textdecoder import SearchDecoder
from transduce.runtime.model import OPS, ExportError, OnnxModel

__all__ = ["DecodeOptions", "Pipeline", "TextSide", "Translation", "Translator", "rollout"]


class TextSide:
    """Tokenizer + vocabulary of one side, from the manifest."""

    def __init__(self, model_dir: Path, entry: dict):
        spm = entry.get("sentencepiece")
        for name in (entry["vocab"], spm):
            if name and not (model_dir / name).is_file():
                raise ExportError(f"{model_dir / name}: no such file (incomplete export)")
        self.tok = build_tokenizer(
            entry["tokenizer"], entry["lowercase"], model_dir / spm if spm else None
        )
        self.vocab = Vocab.load(model_dir / entry["vocab"])


class Pipeline:
    """Text <-> ids for an exported model (``TextPipeline`` without torch)."""

    def __init__(self, model_dir: Path, text: dict):
        self.src, self.tgt = TextSide(model_dir, text["src"]), TextSide(model_dir, text["tgt"])
        self.fields = text.get("fields", 1)
        self.src_vocab, self.tgt_tok, self.tgt_vocab = self.src.vocab, self.tgt.tok, self.tgt.vocab

    def src_tokens(self, text: str) -> list[str]:
        return pack_fields(self.src.tok.encode, text, self.fields)


class Translator(SearchDecoder):
    """An ONNX export ready to translate, without torch: the onnx engine,
    :class:`~transduce.inference.textdecoder.SearchDecoder` over numpy arrays and onnxruntime."""

    engine = "onnx"

    def __init__(self, model: OnnxModel):
        self.model, self.manifest, self.ops = model, model.manifest, model.ops
        if self.manifest.get("kind") != "text":
            raise ExportError(
                f"{model.dir}: a forecasting export: forecast it (python -m transduce.runtime "
                "forecast, or transduce forecast) or serve it (transduce serve)"
            )
        self.pipeline = Pipeline(model.dir, self.manifest["text"])
        self.defaults = self.manifest["decode"]
        if self.manifest.get("positions"):  # a transformer's learned table
            self.hold_positions(int(self.manifest["positions"]))

    @classmethod
    def load(
        cls, model_dir: str | os.PathLike, threads: int = 0, device: str = "cpu"
    ) -> Translator:
        return cls(OnnxModel(model_dir, threads, device))

    @classmethod
    def open(cls, model_dir: str, checkpoint: str, device: str, threads: int) -> Translator:
        """The engine registry's loader (an export has one set of weights)."""
        return cls.load(model_dir, threads, device)


def rollout(model: OnnxModel, src: np.ndarray, tgt_in: np.ndarray, out_dim: int = 1):
    """Forecasting roll-out of an exported real-valued model: ``src [B, L, F]`` windows,
    ``tgt_in [B, H, D + C]`` (start values, then the known exogenous features) -> outputs
    ``[B, H, D]`` (scaled as the model sees them) and attention or None."""
    mask = np.ones(src.shape[:2], dtype=bool)
    src, tgt_in = src.astype(np.float32), tgt_in.astype(np.float32)
    return core.rollout(OPS, model, src, mask, tgt_in, out_dim)
