"""A CTranslate2 export (``transduce export ct2``) behind the runtime's Translator API.

CTranslate2 runs its own search; the options map onto it where they mean the same thing:
raw log-probability ranking is its ``length_penalty=0`` and ``--normalize`` its
``length_penalty=1``. The GNMT penalty (``--length-penalty``) has no CTranslate2 form and
is refused. No torch is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from transduce.runtime.model import ExportError, read_manifest
from transduce.runtime.translate import DecodeOptions, Pipeline, Translation, source_tokens
from transduce.searchcore import output_limits


class CT2Translator:
    """``CT2Translator.load(DIR).translate([...])``, like :class:`Translator`."""

    def __init__(self, model_dir: str | os.PathLike, threads: int = 0):
        import ctranslate2

        self.dir = Path(model_dir)
        self.manifest = read_manifest(self.dir, engine="ct2")
        if not (self.dir / "model.bin").is_file():
            raise ExportError(f"{self.dir / 'model.bin'}: no such file (incomplete export)")
        self.pipeline = Pipeline(self.dir, self.manifest["text"])
        self.defaults = self.manifest["decode"]
        self.ct2 = ctranslate2.Translator(
            str(self.dir), device="cpu", inter_threads=1, intra_threads=threads
        )

    @classmethod
    def load(cls, model_dir: str | os.PathLike, threads: int = 0) -> CT2Translator:
        return cls(model_dir, threads)

    def _kwargs(self, o) -> dict:
        if o.alpha:
            raise ValueError("--length-penalty (GNMT) is not available with CTranslate2; "
                             "use --normalize, or the onnx or torch engine")  # fmt: skip
        if o.sample:
            import ctranslate2

            if o.seed is not None:
                ctranslate2.set_random_seed(o.seed)
            return dict(beam_size=1, num_hypotheses=o.nbest, sampling_topk=o.top_k,
                        sampling_topp=o.top_p, sampling_temperature=o.temperature)  # fmt: skip
        return dict(beam_size=o.beam, num_hypotheses=o.nbest,
                    length_penalty=1.0 if o.normalize else 0.0,
                    no_repeat_ngram_size=o.no_repeat_ngram)  # fmt: skip

    def decode(self, texts: list[str], options=None, first_line: int = 1):
        """Up to ``options.nbest`` translations per input, best first, in input order."""
        o = options or DecodeOptions()
        results: list[list[Translation]] = [[] for _ in texts]
        live, all_tokens = source_tokens(self.pipeline, texts, o, self.defaults, first_line)
        for i in set(range(len(texts))) - set(live):
            results[i] = [Translation("", [], [], 0.0, None, 0.0)]
        tokens = [all_tokens[i] for i in live]
        max_len = o.max_len or self.defaults["max_len"]
        ratio = o.max_len_ratio if o.max_len_ratio is not None else self.defaults["max_len_ratio"]
        limits = output_limits([len(t) for t in tokens], max_len, ratio)
        vocab = self.pipeline.src.vocab
        known = [[t if t in vocab.stoi else "<unk>" for t in toks] for toks in tokens]
        kwargs = self._kwargs(o)
        for limit in sorted(set(limits)):  # CTranslate2 takes one length limit per call
            group = [k for k, n in enumerate(limits) if n == limit]
            out = self.ct2.translate_batch(
                [known[k] for k in group], max_batch_size=o.batch_size or 64,
                max_decoding_length=limit, return_scores=True, **kwargs,
                # ours may end at the first step; inputs were limited above already
                min_decoding_length=0, max_input_length=0,
            )  # fmt: skip
            for k, res in zip(group, out, strict=True):
                results[live[k]] = [
                    self._result(tokens[k], hyp, score)
                    for hyp, score in zip(res.hypotheses, res.scores, strict=True)
                ]
        return results

    def iter_decode(self, texts: list[str], options=None):
        """:meth:`decode`, one batch of inputs at a time, in input order."""
        size = (options and options.batch_size) or self.defaults["batch_size"]
        for start in range(0, len(texts), size):
            yield self.decode(texts[start : start + size], options, first_line=start + 1)

    def _result(self, src_tokens: list[str], out_tokens: list[str], score: float):
        text = self.pipeline.tgt_tok.decode(out_tokens)
        return Translation(text, src_tokens, list(out_tokens), float(score), None, None)

    def translate_full(self, texts: list[str], options=None) -> list[Translation]:
        return [hyps[0] for hyps in self.decode(texts, options)]

    def translate(self, texts: list[str], options=None) -> list[str]:
        return [t.text for t in self.translate_full(texts, options)]
