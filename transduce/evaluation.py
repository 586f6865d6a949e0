"""Scoring a text decoder against references: BLEU, chrF, exact match, token accuracy and
speed, for every engine (``transduce evaluate`` and ``python -m transduce.runtime evaluate``).
Imports no torch: the PyTorch-free runtime evaluates exported models with it."""

from __future__ import annotations

import logging
import os
import re
import time

from transduce.atomic import atomic_output
from transduce.inference.decoding import DecodeOptions
from transduce.inference.textdecoder import TextDecoder
from transduce.metrics import bleu_chrf, bleu_lowercase, bleu_lowercase_moses, exact_match

log = logging.getLogger("transduce")


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
    translator: TextDecoder,
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


def evaluate_files(
    translator: TextDecoder,
    src: str,
    ref: str,
    options: DecodeOptions | None = None,
    output: str | os.PathLike | None = None,
    ref_lang: str | None = None,
) -> dict[str, float | str | int]:
    """:func:`evaluate` on the lines of ``src`` and ``ref`` (plain or .gz), with the Moses
    language from ``ref_lang`` or ``ref``'s name; says which in ``bleu_lc_moses_lang``."""
    from transduce.data.corpus import read_lines

    sources, references = read_lines(src), read_lines(ref)
    lang, how = moses_language(ref, ref_lang)
    log.info("bleu_lc_moses: Moses tokenizer for %r, from %s (--ref-lang sets it)", lang, how)
    scores = evaluate(translator, sources, references, options, output=output, lang=lang)
    scores["bleu_lc_moses_lang"] = f"{lang} (from {how})"
    return scores
