"""Loading a trained run and turning text into text (the public inference API)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from transduce import checkpoint as ckpt
from transduce.config import Config, load_config
from transduce.data.pipeline import TextPipeline
from transduce.metrics import bleu_chrf, exact_match
from transduce.nn.models import Seq2Seq, build_model
from transduce.search import greedy
from transduce.train import resolve_device


@dataclass
class Translation:
    text: str
    src_tokens: list[str]
    out_tokens: list[str]
    score: float  # sum of log-probabilities
    attention: np.ndarray | None  # [len(out_tokens), len(src_tokens)]


class Translator:
    """A trained model ready to translate: ``Translator.load("runs/ell").translate([...])``."""

    def __init__(self, cfg: Config, pipeline: TextPipeline, model: Seq2Seq, device: torch.device):
        self.cfg, self.pipeline, self.model, self.device = cfg, pipeline, model.eval(), device

    @classmethod
    def load(
        cls, run_dir: str | os.PathLike, checkpoint: str = "best", device: str = "cpu"
    ) -> Translator:
        """Load ``run_dir``'s best weights (``checkpoint="last"`` for the latest)."""
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"{run_dir}: not a transduce run (no config.yaml)")
        cfg = load_config(run_dir / "config.yaml")
        pipeline = TextPipeline.load(cfg.data, run_dir)
        model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
        weights = run_dir / (
            "model.safetensors" if checkpoint == "best" else "last/model.safetensors"
        )
        ckpt.load_weights(model, weights)
        dev = resolve_device(device)
        return cls(cfg, pipeline, model.to(dev), dev)

    @torch.no_grad()
    def translate_full(
        self, texts: list[str], batch_size: int | None = None, max_len: int | None = None
    ) -> list[Translation]:
        """Translations in input order, with tokens, scores and attention. Empty input
        gives empty output; unknown symbols map to ``<unk>``."""
        dcfg = self.cfg.decode
        results: list[Translation | None] = [None] * len(texts)
        live = [i for i, t in enumerate(texts) if t.strip()]
        for i in set(range(len(texts))) - set(live):
            results[i] = Translation("", [], [], 0.0, None)
        data = self.pipeline.encode([texts[i] for i in live])
        for batch in data.iter_batches(batch_size or dcfg.batch_size):
            batch = batch.to(self.device)
            hyp = greedy(
                self.model, batch.src, batch.src_mask, max_len or dcfg.max_len, dcfg.max_len_ratio
            )
            for row, k in enumerate(batch.index.tolist()):
                results[live[k]] = self._result(texts[live[k]], hyp, row)
        return results  # type: ignore[return-value]

    def _result(self, text: str, hyp, row: int) -> Translation:
        n = int(hyp.lengths[row])
        ids = hyp.tokens[row, :n].tolist()
        out_tokens = self.pipeline.tgt_vocab.decode(ids)
        src_tokens = self.pipeline.src_tokens(text)
        attn = None
        if hyp.attention is not None:
            attn = hyp.attention[row, :n, : len(src_tokens)].cpu().numpy()
        return Translation(
            self.pipeline.tgt_tok.decode(out_tokens),
            src_tokens,
            out_tokens,
            float(hyp.scores[row]),
            attn,
        )

    def translate(self, texts: list[str], batch_size: int | None = None) -> list[str]:
        return [t.text for t in self.translate_full(texts, batch_size)]


def evaluate(
    translator: Translator, sources: list[str], references: list[str], batch_size: int | None = None
) -> dict[str, float | str | int]:
    """BLEU and chrF (sacrebleu), exact match and token accuracy of greedy outputs."""
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} source lines but {len(references)} reference lines")
    hyps = translator.translate(sources, batch_size)
    tok = translator.pipeline.tgt_tok
    correct = total = 0
    for hyp, ref in zip(hyps, references, strict=True):
        h, r = tok.encode(hyp), tok.encode(ref)
        correct += sum(a == b for a, b in zip(h, r, strict=False))
        total += len(r)
    return {
        "n": len(sources),
        **bleu_chrf(hyps, references),
        "exact": round(exact_match(hyps, references), 4),
        "token_acc": round(correct / max(total, 1), 4),
    }
