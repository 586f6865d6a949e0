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


def bleu_lowercase(
    hyps: Sequence[str], refs: Sequence[str], tokenize: str = "13a"
) -> dict[str, float | str]:
    """Corpus BLEU on lowercased text split by sacrebleu's ``tokenize`` tokenizer: the way
    many published Multi30k figures are computed (on tokenised, lowercased text), so they
    compare like for like. The key names the tokenizer: ``bleu_lc_13a``."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    bleu = sacrebleu.metrics.BLEU(lowercase=True, tokenize=tokenize)
    b = bleu.corpus_score(list(hyps), [list(refs)])
    return {
        f"bleu_lc_{tokenize}": round(b.score, 2),
        "bleu_lc_signature": str(bleu.get_signature()),
    }


def bleu_lowercase_moses(
    hyps: Sequence[str], refs: Sequence[str], lang: str = "en"
) -> dict[str, float | str]:
    """Corpus BLEU on lowercased text split by the Moses tokenizer (sacremoses, ``lang``'s
    non-breaking prefixes, no aggressive hyphen splitting), scored on those tokens as they
    are: the statistic of fairseq's ``generate.py`` on Moses-tokenised lowercased Multi30k,
    as in Wu et al. (2021), "Good for Misconceived Reasons: An Empirical Revisiting on the
    Need for Visual Context in Multimodal Machine Translation" (its test_2016_flickr German
    reference has 12,103 tokens this way, as their log prints)."""
    from sacremoses import MosesTokenizer

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    moses = MosesTokenizer(lang=lang)

    def tok(lines: Sequence[str]) -> list[str]:
        return [" ".join(moses.tokenize(line.lower(), escape=False)) for line in lines]

    bleu = sacrebleu.metrics.BLEU(tokenize="none", force=True)  # tokenised on purpose
    b = bleu.corpus_score(tok(hyps), [tok(refs)])
    return {
        "bleu_lc_moses": round(b.score, 2),
        "bleu_lc_moses_signature": f"lowercased+moses-{lang}|{bleu.get_signature()}",
    }


# ---------------------------------------------------------------------- QA and summaries


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation (Rajpurkar et al. 2016): lowercase, drop punctuation
    and the articles a/an/the, squeeze whitespace."""
    import re
    import string

    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(hyp: str, ref: str) -> float:
    from collections import Counter

    h, r = normalize_answer(hyp).split(), normalize_answer(ref).split()
    if not h or not r:
        return float(h == r)
    common = sum((Counter(h) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(h), common / len(r)
    return 2 * precision * recall / (precision + recall)


def squad_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Extractive-QA exact match and mean token F1 after :func:`normalize_answer`, in %."""
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    pairs = list(zip(hyps, refs, strict=True))
    em = sum(normalize_answer(h) == normalize_answer(r) for h, r in pairs)
    f1 = sum(_token_f1(h, r) for h, r in pairs)
    n = max(len(pairs), 1)
    return {"em": round(100 * em / n, 2), "f1": round(100 * f1 / n, 2)}


def rouge_scores(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure in % (Lin 2004), by Google's ``rouge-score`` package
    (its default tokenizer: lowercase, alphanumeric tokens; Porter stemming on)."""
    from rouge_score import rouge_scorer, tokenizers

    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")
    kinds = ("rouge1", "rouge2", "rougeL")
    tokenizer = tokenizers.DefaultTokenizer(use_stemmer=True)
    scorer = rouge_scorer.RougeScorer(list(kinds), tokenizer=tokenizer)
    totals = dict.fromkeys(kinds, 0.0)
    for hyp, ref in zip(hyps, refs, strict=True):
        for kind, score in scorer.score(ref, hyp).items():
            totals[kind] += score.fmeasure
    n = max(len(refs), 1)
    return {kind: round(100 * total / n, 2) for kind, total in totals.items()}
