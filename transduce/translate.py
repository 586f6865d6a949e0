"""Loading a trained run and turning text into text (the public inference API)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from transduce import checkpoint as ckpt
from transduce.config import Config, ConfigError, load_run_config
from transduce.data.batches import ParallelData
from transduce.data.pipeline import TextPipeline
from transduce.decoding import DecodeOptions, Translation
from transduce.device import resolve_device
from transduce.metrics import bleu_chrf, bleu_lowercase, bleu_lowercase_moses, exact_match
from transduce.nn.models import Seq2Seq, build_model
from transduce.scoring import PairScore
from transduce.search import OPS
from transduce.textdecoder import SearchDecoder


class Translator(SearchDecoder):
    """A trained model ready to translate: ``Translator.load("runs/ell").translate([...])``.
    The torch engine: :class:`~transduce.textdecoder.SearchDecoder` over torch tensors."""

    engine = "torch"
    ops = OPS

    def __init__(self, cfg: Config, pipeline: TextPipeline, model: Seq2Seq, device: torch.device):
        self.cfg, self.pipeline, self.model, self.device = cfg, pipeline, model.eval(), device
        self.defaults = asdict(cfg.decode)

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike, checkpoint: str = "best", device: str = "cpu"
    ) -> Translator:
        """Load ``run_dir``'s best weights (``"last"``: the latest; ``"averaged"``: the
        average written by ``transduce average``)."""
        run_dir = Path(run_dir)
        cfg = load_run_config(run_dir)
        if cfg.series is not None:
            raise ConfigError(f"{run_dir}: a forecasting run; use transduce forecast")
        pipeline = TextPipeline.load(cfg.data, run_dir)
        model = build_model(
            cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab), sources=pipeline.fields
        )
        names = {"best": "model.safetensors", "last": "last/model.safetensors",
                 "averaged": "averaged/model.safetensors"}  # fmt: skip
        if checkpoint not in names:
            raise ValueError(f"checkpoint must be one of {', '.join(names)}, got {checkpoint!r}")
        weights = run_dir / names[checkpoint]
        ckpt.load_weights(model, weights)
        dev = resolve_device(device)
        return cls(cfg, pipeline, model.to(dev), dev)

    @classmethod
    def open(cls, model_dir: str, checkpoint: str, device: str, threads: int) -> Translator:
        """The engine registry's loader (``threads``: torch's are set by the command)."""
        return cls.load(model_dir, checkpoint, device)

    @torch.no_grad()
    def decode(
        self,
        texts: list[str],
        options: DecodeOptions | None = None,
        first_line: int = 1,
        **targets: Any,
    ) -> list[list[Translation]]:
        return super().decode(texts, options, first_line, **targets)

    decode.__doc__ = SearchDecoder.decode.__doc__

    @torch.no_grad()
    def score(
        self, texts: list[str], targets: list[str], options: DecodeOptions | None = None
    ) -> list[PairScore]:
        return super().score(texts, targets, options)

    score.__doc__ = SearchDecoder.score.__doc__

    def _batches(self, ids: list[list[int]], size: int):
        """Length-bucketed batches on the model's device: (positions, src, mask)."""
        for batch in ParallelData(ids).iter_batches(size):
            batch = batch.to(self.device)
            yield batch.index.tolist(), batch.src, batch.src_mask


def reference_language(path: str | os.PathLike) -> str:
    """The language code in a reference file's name (``test_2016_flickr.de.gz`` -> ``de``),
    or ``en`` when the name has none."""
    return moses_language(path)[0]


def moses_language(path: str | os.PathLike, given: str | None = None) -> tuple[str, str]:
    """The language of bleu_lc_moses' tokenizer and how it was chosen: ``given`` (the
    ``--ref-lang`` flag), else the code in the reference file's name, else ``en``."""
    if given:
        return given, "--ref-lang"
    match = re.search(r"\.([a-z]{2,3})(\.gz)?$", os.fspath(path))
    if match and match.group(1) not in ("txt", "gz", "tsv"):
        return match.group(1), f"the name of {os.path.basename(path)}"
    return "en", f"the default: no language code in {os.path.basename(path)}'s name"


def evaluate(
    translator: Translator,
    sources: list[str],
    references: list[str],
    options: DecodeOptions | None = None,
    output: str | os.PathLike | None = None,
    lang: str = "en",
) -> dict[str, float | str | int]:
    """BLEU and chrF (sacrebleu, cased, detokenised), BLEU on lowercased 13a tokens and on
    lowercased Moses tokens of language ``lang`` (as published Multi30k figures are
    computed), exact match, token accuracy and decoding speed. ``output``: also write the
    hypotheses there, one per line."""
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} source lines but {len(references)} reference lines")
    if not sources:
        raise ValueError("nothing to evaluate: the source and reference files are empty")
    start = time.perf_counter()
    outputs = translator.translate_full(sources, options)
    seconds = time.perf_counter() - start
    hyps = [o.text for o in outputs]
    if output is not None:
        from transduce.atomic import atomic_output

        with atomic_output(output) as out:  # a FIFO is written through, a file replaced
            out.write("".join(h + "\n" for h in hyps))
    tok = translator.pipeline.tgt_tok
    correct = total = 0
    for hyp, ref in zip(hyps, references, strict=True):
        h, r = tok.encode(hyp), tok.encode(ref)
        correct += sum(a == b for a, b in zip(h, r, strict=False))
        total += len(r)
    out_tokens = sum(len(o.out_tokens) for o in outputs)
    return {
        "n": len(sources),
        **bleu_chrf(hyps, references),
        **bleu_lowercase(hyps, references),
        **bleu_lowercase_moses(hyps, references, lang),
        "exact": round(exact_match(hyps, references), 4),
        "token_acc": round(correct / max(total, 1), 4),
        "seconds": round(seconds, 3),
        "sentences_per_s": round(len(sources) / max(seconds, 1e-9), 1),
        "tokens_per_s": round(out_tokens / max(seconds, 1e-9), 1),
    }
