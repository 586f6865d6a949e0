"""A CTranslate2 export (``transduce export ct2``): the ct2 engine's text decoder.

CTranslate2 runs its own search; the options map onto it where they mean the same thing:
raw log-probability ranking is its ``length_penalty=0`` and ``--normalize`` its
``length_penalty=1``. What it cannot honour (the GNMT penalty, attention) is declared with
its registration in :mod:`transduce.engines`. No torch is imported.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from transduce.device import cpu_flags, ct2_device
from transduce.inference.decoding import DecodeOptions, Translation
from transduce.inference.scoring import PairScore
from transduce.inference.searchrules import output_limits
from transduce.inference.textdecoder import TextDecoder
from transduce.runtime.model import ExportError, read_manifest
from transduce.runtime.translate import Pipeline

AVX512 = {"avx512f", "avx512bw", "avx512vl"}


def prefer_avx512(environ: os._Environ | dict = os.environ, cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Let CTranslate2 use its AVX-512 kernels on every CPU that has them.

    CTranslate2 picks AVX-512 only on Intel CPUs and AVX2 elsewhere; on the AMD EPYC here
    (AVX-512 with 256-bit units) forcing AVX-512 decoded the tiny transformer with beam 5 in
    about 15 % less time, int8 and fp32 alike (docs/guide/export.md). Sets
    ``CT2_FORCE_CPU_ISA=AVX512`` unless the user has set it; CTranslate2 reads it when it
    first looks at the CPU, so this runs before the first model loads. True when set here."""
    if "CT2_FORCE_CPU_ISA" in environ or not cpu_flags(cpuinfo) >= AVX512:
        return False
    environ["CT2_FORCE_CPU_ISA"] = "AVX512"
    return True


_SEEDING = threading.Lock()  # set_random_seed, then the translator whose threads take it


class CT2Translator(TextDecoder):
    """``CT2Translator.load(DIR).translate([...])``, like the other engines' translators."""

    engine = "ct2"
    seed_loads_model = True  # see _seeded: the server keeps such decodes off its event loop

    def __init__(self, model_dir: str | os.PathLike, threads: int = 0, device: str = "cpu"):
        prefer_avx512()
        import ctranslate2

        self.dir = Path(model_dir)
        self.manifest = read_manifest(self.dir, engine="ct2")
        if not (self.dir / "model.bin").is_file():
            raise ExportError(f"{self.dir / 'model.bin'}: no such file (incomplete export)")
        self.pipeline = Pipeline(self.dir, self.manifest["text"])
        self.defaults = self.manifest["decode"]
        # its position table (exports before it was recorded had 1,024 rows)
        self.hold_positions(int(self.manifest.get("positions", 1024)))
        kind, index = ct2_device(device)  # before loading: a missing GPU is one line
        self.device = kind if kind == "cpu" else f"cuda:{index}"
        self._args = dict(device=kind, device_index=index, inter_threads=1, intra_threads=threads)
        try:
            self.ct2 = ctranslate2.Translator(str(self.dir), **self._args)
        except (RuntimeError, ValueError) as err:  # its own messages: a bad model.bin, CUDA
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise ExportError(
                f"{self.dir}: CTranslate2 cannot load it on {self.device}: {first}"
            ) from None

    @classmethod
    def load(
        cls, model_dir: str | os.PathLike, threads: int = 0, device: str = "cpu"
    ) -> CT2Translator:
        return cls(model_dir, threads, device)

    @classmethod
    def open(cls, model_dir: str, checkpoint: str, device: str, threads: int) -> CT2Translator:
        """The engine registry's loader (an export has one set of weights)."""
        return cls(model_dir, threads, device)

    def _seeded(self, o: DecodeOptions) -> Any:
        """The translator a decode runs on. CTranslate2 seeds each worker thread's sampler
        from :func:`ctranslate2.set_random_seed` once, when the thread starts, so a seed
        given later changed nothing (a served seeded sample differed at every request): a
        seeded sample runs on a fresh translator, its threads started after the seed. That
        loads the model again (~80 ms for a 180 MB export on one core; on a GPU a second copy
        while it decodes), which the server keeps off its event loop (serve/state.py).
        The seed is process-wide: one such start at a time."""
        if not (o.sample and o.seed is not None):
            return self.ct2
        import ctranslate2

        with _SEEDING:
            ctranslate2.set_random_seed(o.seed)
            return ctranslate2.Translator(str(self.dir), **self._args)

    def _kwargs(self, o: DecodeOptions) -> dict:
        if o.sample:
            return dict(
                beam_size=1,
                num_hypotheses=o.nbest,
                sampling_topk=o.top_k,
                sampling_topp=o.top_p,
                sampling_temperature=o.temperature,
                length_penalty=0.0,  # a sample's score is its log-probability (default 1)
            )
        return dict(
            beam_size=o.beam,
            num_hypotheses=o.nbest,
            # greedy decoding (beam 1) ranks nothing: its score is the log-probability,
            # as on the other engines
            length_penalty=1.0 if o.normalize and o.beam > 1 else 0.0,
            no_repeat_ngram_size=o.no_repeat_ngram,
        )

    def _known(self, tokens: list[list[str]], vocab) -> list[list[str]]:
        return [[t if t in vocab.stoi else "<unk>" for t in toks] for toks in tokens]

    def _decode_live(self, tokens, texts, o, extras=(None, None, None)):
        """CTranslate2's ``translate_batch``; a prefix is its ``target_prefix`` (its
        constraints are refused in :mod:`transduce.engines`: it has none)."""
        results: list[list[Translation]] = [[] for _ in tokens]
        prefixes = extras[0]
        limits = output_limits([len(t) for t in tokens], *self.output_limits(o))
        if prefixes is not None:  # the output holds the prefix, as on the other engines
            limits = [max(n, len(p)) for n, p in zip(limits, prefixes, strict=True)]
            prefixes = self._known(prefixes, self.pipeline.tgt_vocab)
        known = self._known(tokens, self.pipeline.src_vocab)
        kwargs, translator = self._kwargs(o), self._seeded(o)
        # its score is the hypothesis' log-probability unless normalised, renormalised by
        # n-gram blocking, or past a prefix (which CTranslate2 leaves out of it)
        raw = not kwargs.get("length_penalty") and not o.no_repeat_ngram and prefixes is None
        for limit in sorted(set(limits)):  # CTranslate2 takes one length limit per call
            group = [k for k, n in enumerate(limits) if n == limit]
            if prefixes is not None:
                kwargs["target_prefix"] = [prefixes[k] or None for k in group]
            out = translator.translate_batch(
                [known[k] for k in group],
                max_batch_size=o.batch_size or 64,
                max_decoding_length=limit,
                return_scores=True,
                **kwargs,
                # ours may end at the first step; inputs were limited above already
                min_decoding_length=0,
                max_input_length=0,
            )
            for k, res in zip(group, out, strict=True):
                results[k] = [
                    self._text(tokens[k], hyp, float(score), float(score) if raw else None, None)
                    for hyp, score in zip(res.hypotheses, res.scores, strict=True)
                ]
        return results

    def _score_live(self, tokens, texts, targets, o):
        """CTranslate2's ``score_batch``: the log-probability of every target token and
        of ``</s>``, teacher forced."""
        out = self.ct2.score_batch(
            self._known(tokens, self.pipeline.src_vocab),
            self._known(targets, self.pipeline.tgt_vocab),
            max_batch_size=o.batch_size or 64,
            max_input_length=0,
        )
        return [
            PairScore(float(sum(r.log_probs)), [*tgt, "</s>"], [float(x) for x in r.log_probs])
            for r, tgt in zip(out, targets, strict=True)
        ]
