"""Scores: BLEU and chrF through sacrebleu, exact match, perplexity."""

from __future__ import annotations

import math
from collections.abc import Sequence

import sacrebleu


def perplexity(loss: float) -> float:
    """exp of the mean token cross-entropy (capped to stay finite)."""
    return math.exp(min(loss, 50.0))


def exact_match(hyps: Sequence[str], refs: Sequence[str]) -> float:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    return sum(h == r for h, r in zip(hyps, refs, strict=True)) / max(len(refs), 1)


def bleu_chrf(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float | str]:
    """Corpus BLEU and chrF on detokenized text, with sacrebleu's signatures."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(list(hyps), [list(refs)])
    c = chrf.corpus_score(list(hyps), [list(refs)])
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }
