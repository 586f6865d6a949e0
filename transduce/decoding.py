"""What every engine shares around decoding, without torch: the options (``DecodeOptions``),
the result (``Translation``), options from the command-line flags, and the streamed output of
``translate`` (text lines or JSON lines). ``transduce translate`` (PyTorch) and
``python -m transduce.runtime translate`` (ONNX / CTranslate2) both use these, so their
options, checks and output are one and the same."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Translation:
    text: str
    src_tokens: list[str]
    out_tokens: list[str]
    score: float  # ranking score (log-probability, length-penalised for beams with alpha)
    attention: np.ndarray | None  # [len(out_tokens), len(src_tokens)]
    logprob: float | None = None  # raw sum of log-probabilities


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: greedy (default), beam search, or sampling."""

    beam: int = 1
    nbest: int = 1  # hypotheses (or samples) returned per input
    alpha: float = 0.0  # GNMT length penalty
    normalize: bool = False  # rank beams by log-probability per token
    no_repeat_ngram: int = 0
    sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    max_len: int | None = None  # default: the run's decode.max_len
    max_len_ratio: float | None = None
    batch_size: int | None = None
    attention: bool = True
    max_input_len: int | None = None  # source tokens per line; default decode.max_input_len
    on_long_input: str | None = None  # truncate / skip / error; default decode.on_long_input

    def __post_init__(self) -> None:
        """Reject impossible settings by name (``beam=0``, ``top_p=1.5``, ...)."""
        checks = {
            "beam": self.beam >= 1, "nbest": self.nbest >= 1, "top_k": self.top_k >= 0,
            "top_p": 0.0 < self.top_p <= 1.0, "temperature": self.temperature > 0,
            "no_repeat_ngram": self.no_repeat_ngram >= 0, "alpha": self.alpha >= 0,
            "batch_size": self.batch_size is None or self.batch_size >= 1,
            "max_len": self.max_len is None or self.max_len >= 1,
            "max_len_ratio": self.max_len_ratio is None or self.max_len_ratio > 0,
            "max_input_len": self.max_input_len is None or self.max_input_len >= 1,
            "on_long_input": self.on_long_input in (None, "truncate", "skip", "error"),
        }  # fmt: skip
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"DecodeOptions.{name}: invalid value {getattr(self, name)!r}")
        if not self.sample and self.nbest > self.beam:
            raise ValueError(f"DecodeOptions: nbest={self.nbest} needs beam >= nbest (or sample)")


def options_from_args(args: argparse.Namespace) -> DecodeOptions:
    """DecodeOptions from the flags of ``cli_options.add_decode_flags`` (checked together
    first, so a bad combination names its flags)."""
    from transduce.cli_options import check_decode_args

    check_decode_args(args)
    return DecodeOptions(
        beam=args.beam, nbest=args.nbest, alpha=args.length_penalty, normalize=args.normalize,
        no_repeat_ngram=args.no_repeat_ngram, sample=args.sample, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, max_len=args.max_len,
        max_len_ratio=args.max_len_ratio, batch_size=args.batch_size,
        attention=getattr(args, "format", "text") == "jsonl", max_input_len=args.max_input_len,
        on_long_input=args.on_long_input,
    )  # fmt: skip


def search_rows(ops, model, src, src_mask, o: DecodeOptions, max_len: int, ratio) -> list:
    """Search as ``o`` says, over any engine's array ops (:mod:`transduce.searchcore`):
    per source row, its (ids, score, logprob, attention) tuples, best first."""
    from transduce import searchcore as core

    if o.sample or (o.beam == 1 and o.nbest == 1):
        if o.sample:
            hyp = core.sample(ops, model, src, src_mask, o.nbest, o.temperature, o.top_k,
                              o.top_p, o.seed, max_len, ratio)  # fmt: skip
        else:
            hyp = core.decode(ops, model, src, src_mask, max_len, ratio, ops.argmax, o.attention)
        rows = []
        for r in range(hyp.tokens.shape[0]):
            n = int(hyp.lengths[r])
            att = hyp.attention[r, :n] if hyp.attention is not None else None
            score = float(hyp.scores[r])
            rows.append((hyp.tokens[r, :n].tolist(), score, score, att))
        per = o.nbest if o.sample else 1
        return [rows[i : i + per] for i in range(0, len(rows), per)]
    nb = core.beam_search(ops, model, src, src_mask, o.beam, o.nbest, max_len, ratio, o.alpha,
                          o.normalize, o.no_repeat_ngram, o.attention)  # fmt: skip
    att = nb.attention
    return [
        [(nb.tokens[i][j], nb.scores[i][j], nb.logprobs[i][j],
          att[i][j] if att is not None else None) for j in range(len(nb.tokens[i]))]
        for i in range(len(nb.tokens))
    ]  # fmt: skip


def _rounded(matrix, digits: int) -> list:
    """Rounded in float64, so 0.1165 prints as 0.1165, not float32's 0.11649999767541885."""
    return np.asarray(matrix, dtype=np.float64).round(digits).tolist()


def jsonl_line(source: str, hyps: list[Translation]) -> str:
    """One JSON line per input: n-best texts, scores (6 decimals), tokens, attention (4)."""
    record = {
        "source": source,
        "src_tokens": hyps[0].src_tokens,
        "hypotheses": [
            {
                "text": h.text,
                "score": round(h.score, 6),
                "logprob": round(h.logprob, 6) if h.logprob is not None else None,
                "tokens": h.out_tokens,
                "attention": None if h.attention is None else _rounded(h.attention, 4),
            }
            for h in hyps
        ],
    }
    return json.dumps(record, ensure_ascii=False)


def write_translations(
    inputs: list[str],
    batches: Iterable[list[list[Translation]]],
    output: str | None,
    fmt: str = "text",
) -> None:
    """Write each batch's results as it comes, in input order: the best text per line, or
    ``jsonl`` records. stdout streams; a file ``output`` is written to a temporary sibling
    renamed when complete (:func:`transduce.atomic.atomic_output`), so a failure leaves
    any previous file as it was and says how many lines were done."""
    from transduce.atomic import atomic_output

    context = contextlib.nullcontext(sys.stdout) if not output else atomic_output(output)
    done = 0
    with context as out:
        for results in batches:
            part = inputs[done : done + len(results)]
            if fmt == "jsonl":
                pairs = zip(part, results, strict=True)
                out.write("".join(jsonl_line(src, hyps) + "\n" for src, hyps in pairs))
            else:
                out.write("".join(hyps[0].text + "\n" for hyps in results))
            out.flush()
            done += len(results)
