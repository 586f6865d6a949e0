"""The text task: token cross-entropy on a :class:`ParallelData`, validated by loss,
accuracy and perplexity, and (greedy decoding) exact match and BLEU."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from transduce.config import Config
from transduce.data.batches import ParallelData
from transduce.data.pipeline import TextPipeline
from transduce.data.vocab import EOS_ID, PAD_ID
from transduce.engine import distributed
from transduce.engine.objective import Objective
from transduce.engine.view import LoopView
from transduce.inference.search import greedy
from transduce.metrics import bleu_chrf, perplexity


class TextTask:
    """``model`` trained on ``train_data``; ``valid_refs``: raw target text for BLEU
    (lowercased when ``data.lowercase`` is set, as the model's output is)."""

    def __init__(
        self,
        cfg: Config,
        model: torch.nn.Module,
        pipeline: TextPipeline,
        train_data: ParallelData,
        valid_data: ParallelData,
        valid_refs: list[str] | None = None,
    ):
        t = cfg.train
        needs = {"exact": t.valid_exact, "bleu": t.valid_bleu}
        if not needs.get(t.early_stop_metric, True):
            metric = t.early_stop_metric
            raise ValueError(f"train.early_stop_metric={metric} needs train.valid_{metric}: true")
        if valid_refs is not None and cfg.data.lowercase:  # the model writes lowercase
            valid_refs = [ref.lower() for ref in valid_refs]
        self.cfg, self.model, self.pipeline = cfg, model, pipeline
        self.train_data, self.valid_data, self.valid_refs = train_data, valid_data, valid_refs
        self.objective = Objective(model, "tokens", t.label_smoothing)

    def plan(self, epoch: int, rank: int, world: int) -> list[np.ndarray]:
        """Length-bucketed batches (``train.bucket``, ``bucket_by``; a token budget with
        ``max_tokens``), shuffled by (seed, epoch)."""
        t = self.cfg.train
        return self.train_data.batch_order(
            t.batch_size,
            t.seed,
            epoch,
            t.bucket,
            rank=rank,
            world=world,
            max_tokens=t.max_tokens,
            by=t.bucket_by,
        )

    def batch(self, index: np.ndarray):
        return self.train_data.batch(index)

    def validate(self, loop: LoopView) -> dict[str, Any]:
        """Teacher-forced loss / accuracy / perplexity; each rank scores its share of the
        batches and the sums are added over ranks."""
        loss_sum, correct, total = 0.0, 0, 0
        batches = list(self.valid_data.iter_batches(self.cfg.decode.batch_size))
        for batch in distributed.shard(batches):
            batch = batch.to(loop.device)
            with loop.autocast():
                loss, right = self.objective(batch, 1.0)
            loss_sum, correct = loss_sum + float(loss), correct + int(right)
            total += batch.ntokens
        loss_sum, correct, total = distributed.all_sum([loss_sum, correct, total])
        metrics = {"loss": loss_sum / max(total, 1), "acc": correct / max(total, 1)}
        metrics["ppl"] = perplexity(metrics["loss"])
        if self.cfg.train.valid_exact or self.cfg.train.valid_bleu:
            metrics.update(self.decode_validation(loop))
        return metrics

    def decode_validation(self, loop) -> dict[str, float]:
        """Greedy-decode (the first ``valid_max``) validation sources: exact match of the
        token ids, and BLEU of the detokenized text against the raw references."""
        t, n = self.cfg.train, len(self.valid_data)
        if t.valid_max is not None:
            n = min(n, t.valid_max)
        data = self.valid_data.subset(np.arange(n))
        hits, decoded = 0, {}  # decoded: example index -> text, this rank's share
        for batch in distributed.shard(list(data.iter_batches(self.cfg.decode.batch_size))):
            batch = batch.to(loop.device)
            with loop.autocast():
                hyp = greedy(self.model, batch.src, batch.src_mask, self.cfg.decode.max_len)
            gold = batch.tgt_out.masked_fill(batch.tgt_out == EOS_ID, PAD_ID)  # [B, T]
            width = max(hyp.tokens.shape[1], gold.shape[1])
            same = F.pad(hyp.tokens, (0, width - hyp.tokens.shape[1])) == F.pad(
                gold, (0, width - gold.shape[1])
            )
            hits += int((same.all(1) & (hyp.lengths == (gold != PAD_ID).sum(1))).sum())
            for row, i in enumerate(batch.index.tolist()):
                decoded[i] = self.pipeline.decode(hyp.tokens[row, : hyp.lengths[row]].tolist())
        hits = distributed.all_sum([hits])[0]
        for part in distributed.gather_objects(decoded):
            decoded.update(part)
        texts = [decoded[i] for i in range(n)]
        out = {}
        if t.valid_exact:
            out["exact"] = hits / max(n, 1)
        if t.valid_bleu:
            if self.valid_refs is None:
                raise ValueError("train.valid_bleu needs the validation references")
            out["bleu"] = float(bleu_chrf(texts, self.valid_refs[:n])["bleu"])
        return out
