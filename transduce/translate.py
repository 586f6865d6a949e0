"""Loading a trained run and turning text into text (the public inference API)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from transduce import checkpoint as ckpt
from transduce.config import Config, ConfigError, load_run_config
from transduce.data.batches import ParallelData
from transduce.data.pipeline import TextPipeline
from transduce.data.vocab import BOS_ID, PAD_ID
from transduce.decoding import DecodeOptions, Translation, search_rows
from transduce.device import resolve_device
from transduce.metrics import bleu_chrf, bleu_lowercase, bleu_lowercase_moses, exact_match
from transduce.nn.models import Seq2Seq, build_model
from transduce.search import OPS
from transduce.searchcore import limit_inputs


class Translator:
    """A trained model ready to translate: ``Translator.load("runs/ell").translate([...])``."""

    def __init__(self, cfg: Config, pipeline: TextPipeline, model: Seq2Seq, device: torch.device):
        self.cfg, self.pipeline, self.model, self.device = cfg, pipeline, model.eval(), device

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

    @torch.no_grad()
    def decode(
        self, texts: list[str], options: DecodeOptions = DecodeOptions(), first_line: int = 1
    ) -> list[list[Translation]]:
        """Up to ``options.nbest`` translations per input, best first, in input order.
        Empty input gives one empty output; unknown symbols map to ``<unk>``. A source
        over ``max_input_len`` tokens is truncated, skipped (empty output) or refused, with
        a warning naming its line (``first_line`` numbers ``texts[0]``)."""
        results: list[list[Translation]] = [[] for _ in texts]
        tokens = limit_inputs(
            [self.pipeline.src_tokens(t) if t.strip() else [] for t in texts],
            options.max_input_len or self.cfg.decode.max_input_len,
            options.on_long_input or self.cfg.decode.on_long_input, first_line,
        )  # fmt: skip
        live = [i for i, t in enumerate(tokens) if t]
        for i in set(range(len(texts))) - set(live):
            results[i] = [Translation("", [], [], 0.0, None, 0.0)]
        data = ParallelData([self.pipeline.src_vocab.encode(tokens[i]) for i in live])
        for batch in data.iter_batches(options.batch_size or self.cfg.decode.batch_size):
            batch = batch.to(self.device)
            rows = batch.index.tolist()
            src, src_mask = self._sources(batch, [texts[live[k]] for k in rows], options)
            hyps = self._search(src, src_mask, options)
            for row, k in enumerate(rows):
                results[live[k]] = [self._result(tokens[live[k]], *h) for h in hyps[row]]
        return results

    def iter_decode(
        self, texts: list[str], options: DecodeOptions = DecodeOptions()
    ) -> Iterator[list[list[Translation]]]:
        """:meth:`decode`, one batch of inputs at a time, in input order: a caller that
        writes each part as it comes loses at most one batch to a crash."""
        size = options.batch_size or self.cfg.decode.batch_size
        for start in range(0, len(texts), size):
            yield self.decode(texts[start : start + size], options, first_line=start + 1)

    def _sources(self, batch, texts: list[str], options: DecodeOptions):
        """What search reads for ``batch`` (whose rows hold ``texts``): its ids and mask.
        An ensemble packs its members' own tokenizations here."""
        return batch.src, batch.src_mask

    def _search(self, src, src_mask, o: DecodeOptions) -> list[list[tuple]]:
        """Per row: (ids, score, logprob, attention) tuples, best first."""
        max_len = o.max_len or self.cfg.decode.max_len
        ratio = o.max_len_ratio if o.max_len_ratio is not None else self.cfg.decode.max_len_ratio
        return search_rows(OPS, self.model, src, src_mask, o, max_len, ratio)

    def _result(self, src_tokens: list[str], ids, score, logprob, att) -> Translation:
        out_tokens = self.pipeline.tgt_vocab.decode(ids)
        if att is not None:
            # Keep the rows of the tokens that decode() kept (it drops <pad> and <s>).
            kept = [i for i, t in enumerate(ids[: len(att)]) if t not in (PAD_ID, BOS_ID)]
            att = att[kept][: len(out_tokens), : len(src_tokens)].float().cpu().numpy()
        text = self.pipeline.tgt_tok.decode(out_tokens)
        return Translation(text, src_tokens, out_tokens, score, att, logprob)

    def translate_full(
        self, texts: list[str], options: DecodeOptions | None = None
    ) -> list[Translation]:
        """The best translation per input, with tokens, score and attention."""
        return [hyps[0] for hyps in self.decode(texts, options or DecodeOptions())]

    def translate(self, texts: list[str], options: DecodeOptions | None = None) -> list[str]:
        return [t.text for t in self.translate_full(texts, options)]


def reference_language(path: str | os.PathLike) -> str:
    """The language code in a reference file's name (``test_2016_flickr.de.gz`` -> ``de``),
    or ``en`` when the name has none."""
    match = re.search(r"\.([a-z]{2,3})(\.gz)?$", os.fspath(path))
    return match.group(1) if match and match.group(1) not in ("txt", "gz", "tsv") else "en"


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
