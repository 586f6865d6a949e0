"""Loading a trained run and turning text into text (the public inference API)."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from transduce.config import Config, ConfigError, load_run_config
from transduce.data.batches import ParallelData
from transduce.data.pipeline import TextPipeline
from transduce.device import resolve_device
from transduce.engine import checkpoint as ckpt

# scoring moved to transduce.evaluation (no torch there: the runtime evaluates with it)
from transduce.evaluation import evaluate, moses_language, reference_language  # noqa: F401
from transduce.inference.decoding import DecodeOptions, Translation
from transduce.inference.scoring import PairScore
from transduce.inference.search import OPS
from transduce.inference.textdecoder import SearchDecoder
from transduce.nn.models import Seq2Seq, build_model


class Translator(SearchDecoder):
    """A trained model ready to translate: ``Translator.load("runs/ell").translate([...])``.
    The torch engine: :class:`~transduce.inference.textdecoder.SearchDecoder` over torch tensors."""

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
        names = {
            "best": "model.safetensors",
            "last": "last/model.safetensors",
            "averaged": "averaged/model.safetensors",
        }
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
