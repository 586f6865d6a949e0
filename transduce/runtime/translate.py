"""Text in, text out over an ONNX export, with the search of :mod:`transduce.searchcore`.

``Translator.load(DIR2).translate([...])`` mirrors :class:`transduce.translate.Translator`:
the same decoding options and results (:mod:`transduce.decoding`, shared), and no torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from transduce import searchcore as core
from transduce.data.records import SEP, split_fields
from transduce.data.tokenizers import build_tokenizer
from transduce.data.vocab import BOS_ID, PAD_ID, Vocab
from transduce.decoding import DecodeOptions, Translation, search_rows
from transduce.runtime.model import OPS, ExportError, OnnxModel
from transduce.searchcore import limit_inputs


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
        self.tgt_tok, self.tgt_vocab = self.tgt.tok, self.tgt.vocab

    def src_tokens(self, text: str) -> list[str]:
        if self.fields == 1:
            return self.src.tok.encode(text)
        packed: list[str] = []
        for i, field in enumerate(split_fields(text, self.fields)):
            packed += [SEP] * (i > 0) + self.src.tok.encode(field)
        return packed


def source_tokens(pipeline: Pipeline, texts: list[str], o, defaults: dict, first_line: int):
    """(indices of the non-empty inputs, source tokens of every input) after the input
    length limit (:func:`transduce.searchcore.limit_inputs`)."""
    tokens = limit_inputs(
        [pipeline.src_tokens(t) if t.strip() else [] for t in texts],
        getattr(o, "max_input_len", None) or defaults.get("max_input_len"),
        getattr(o, "on_long_input", None) or defaults.get("on_long_input") or "truncate",
        first_line,
    )
    return [i for i, t in enumerate(tokens) if t], tokens


def _batches(ids: list[list[int]], size: int):
    """Length-sorted padded batches: (positions in ``ids``, src ``[b, S]``, mask)."""
    order = np.argsort([len(x) for x in ids], kind="stable")
    for i in range(0, len(order), size):
        idx = order[i : i + size]
        width = max(len(ids[j]) for j in idx)
        src = np.full((len(idx), width), PAD_ID, dtype=np.int64)
        for row, j in enumerate(idx):
            src[row, : len(ids[j])] = ids[j]
        yield idx.tolist(), src, src != PAD_ID


class Translator:
    """An ONNX export ready to translate, without torch."""

    def __init__(self, model: OnnxModel):
        self.model, self.manifest = model, model.manifest
        if self.manifest.get("kind") != "text":
            raise ExportError(f"{model.dir}: a forecasting export; use transduce.runtime.rollout")
        self.pipeline = Pipeline(model.dir, self.manifest["text"])
        self.defaults = self.manifest["decode"]

    @classmethod
    def load(cls, model_dir: str | os.PathLike, threads: int = 0) -> Translator:
        return cls(OnnxModel(model_dir, threads))

    def decode(self, texts: list[str], options=None, first_line: int = 1):
        """Up to ``options.nbest`` translations per input, best first, in input order.
        Empty input gives one empty output; unknown symbols map to ``<unk>``; over-long
        inputs follow ``max_input_len`` / ``on_long_input`` (``first_line`` numbers
        ``texts[0]`` in warnings), as ``transduce.translate.Translator.decode``."""
        o = options or DecodeOptions()
        results: list[list[Translation]] = [[] for _ in texts]
        live, tokens = source_tokens(self.pipeline, texts, o, self.defaults, first_line)
        for i in set(range(len(texts))) - set(live):
            results[i] = [Translation("", [], [], 0.0, None, 0.0)]
        ids = [self.pipeline.src.vocab.encode(tokens[i]) for i in live]
        for idx, src, mask in _batches(ids, o.batch_size or self.defaults["batch_size"]):
            for row, hyps in enumerate(self._search(src, mask, o)):
                k = live[idx[row]]
                results[k] = [self._result(tokens[k], *h) for h in hyps]
        return results

    def iter_decode(self, texts: list[str], options=None):
        """:meth:`decode`, one batch of inputs at a time, in input order."""
        size = (options and options.batch_size) or self.defaults["batch_size"]
        for start in range(0, len(texts), size):
            yield self.decode(texts[start : start + size], options, first_line=start + 1)

    def _search(self, src, mask, o) -> list[list[tuple]]:
        """Per row: (ids, score, logprob, attention) tuples, best first."""
        max_len = o.max_len or self.defaults["max_len"]
        ratio = o.max_len_ratio if o.max_len_ratio is not None else self.defaults["max_len_ratio"]
        return search_rows(self.model.ops, self.model, src, mask, o, max_len, ratio)

    def _result(self, src_tokens: list[str], ids, score, logprob, att) -> Translation:
        out_tokens = self.pipeline.tgt_vocab.decode(ids)
        if att is not None:
            kept = [i for i, t in enumerate(ids[: len(att)]) if t not in (PAD_ID, BOS_ID)]
            att = np.asarray(att, dtype=np.float32)[kept][: len(out_tokens), : len(src_tokens)]
        text = self.pipeline.tgt_tok.decode(out_tokens)
        return Translation(text, src_tokens, out_tokens, score, att, logprob)

    def translate_full(self, texts: list[str], options=None) -> list[Translation]:
        return [hyps[0] for hyps in self.decode(texts, options)]

    def translate(self, texts: list[str], options=None) -> list[str]:
        return [t.text for t in self.translate_full(texts, options)]


def rollout(model: OnnxModel, src: np.ndarray, tgt_in: np.ndarray, out_dim: int = 1):
    """Forecasting roll-out of an exported real-valued model: ``src [B, L, F]`` windows,
    ``tgt_in [B, H, D + C]`` (start values, then the known exogenous features) -> outputs
    ``[B, H, D]`` (scaled as the model sees them) and attention or None."""
    mask = np.ones(src.shape[:2], dtype=bool)
    src, tgt_in = src.astype(np.float32), tgt_in.astype(np.float32)
    return core.rollout(OPS, model, src, mask, tgt_in, out_dim)
