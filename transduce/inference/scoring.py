"""Scoring given targets: the model's log-probability of a (source, target) pair, teacher
forced, as fairseq's ``--score-reference``, Marian's ``marian-scorer`` and CTranslate2's
``score_batch`` compute it. Over the step contract and the array ops of
:mod:`transduce.inference.searchcore`, so the torch engine, the ONNX runtime and ensembles share it.
No torch is imported here.

The score of a pair is the sum over the target's tokens and its ``</s>`` of
``log p(y_t | y_<t, x)``: minus the training objective's summed cross-entropy (without
label smoothing) on the same pair.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass

import numpy as np

from transduce.errors import DataError
from transduce.inference.searchcore import BOS_ID, PAD_ID, log_probs

log = logging.getLogger("transduce.score")


@dataclass
class PairScore:
    """One (source, target) pair's score; ``logprob`` None for a skipped pair (empty
    source)."""

    logprob: float | None
    tokens: list[str]  # the target's tokens, then </s>
    per_token: list[float]  # log-probability of each of ``tokens``

    @property
    def normalized(self) -> float | None:
        """Log-probability per token (length-normalised), </s> counted."""
        if self.logprob is None:
            return None
        return self.logprob / max(len(self.per_token), 1)

    def as_dict(self) -> dict:
        return {
            "logprob": None if self.logprob is None else round(self.logprob, 6),
            "normalized": None if self.normalized is None else round(self.normalized, 6),
            "tokens": self.tokens,
            "per_token": [round(x, 6) for x in self.per_token],
        }


def teacher_forced(ops, model, src, src_mask, tgt_out) -> np.ndarray:
    """Log-probability of every target token ``[B, T]`` (float64; 0 at padding).

    ``src [B, S]``, ``src_mask [B, S]``, ``tgt_out [B, T]``: ``y1 .. yn </s>`` padded with
    0. Each step feeds the gold previous token (``<s>`` first). A model with
    ``score_log_probs`` (an ensemble: the mean of its members' log-probabilities) is
    scored with it; else with its next-token log-probabilities."""
    own = getattr(model, "score_log_probs", None)
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    gold = np.asarray(tgt_out.tolist(), dtype=np.int64).reshape(src.shape[0], -1)
    out = np.zeros(gold.shape, dtype=np.float64)
    prev = ops.full((src.shape[0],), BOS_ID, "int", src)
    for t in range(gold.shape[1]):
        features, state, _ = model.step(prev, state, memory)
        logp = own(features) if own is not None else log_probs(ops, model, features)
        logp = ops.to_numpy(logp).astype(np.float64)  # [B, V]
        out[:, t] = logp[np.arange(gold.shape[0]), gold[:, t]]
        prev = ops.tensor(gold[:, t].tolist(), "int", src)
    return np.where(gold != PAD_ID, out, 0.0)


def target_batch(ids: list[list[int]], eos: int) -> np.ndarray:
    """Target ids -> ``[B, T]`` of ``y1 .. yn </s>``, 0-padded."""
    width = max(len(x) for x in ids) + 1
    out = np.full((len(ids), width), PAD_ID, dtype=np.int64)
    for row, x in enumerate(ids):
        out[row, : len(x)] = x
        out[row, len(x)] = eos
    return out


def write_scores(scores: list[PairScore], output: str | None) -> None:
    """One JSON line per pair (logprob, normalized, tokens, per_token) to ``output`` (written
    whole, then renamed into place) or stdout; skipped pairs (empty source) are counted in a
    warning."""
    import contextlib

    from transduce.atomic import atomic_output

    with contextlib.nullcontext(sys.stdout) if not output else atomic_output(output) as out:
        out.write("".join(json.dumps(s.as_dict(), ensure_ascii=False) + "\n" for s in scores))
        out.flush()
    skipped = sum(s.logprob is None for s in scores)
    if skipped:
        log.warning("%d of %d pairs skipped (empty source): logprob null", skipped, len(scores))


def read_pairs(src: str | None, tgt: str | None) -> tuple[list[str], list[str]]:
    """(sources, targets): line-aligned ``src`` and ``tgt`` files, or without them
    ``SOURCE<TAB>TARGET`` lines on stdin (split at the last tab)."""
    from transduce.data.corpus import read_lines

    if (src is None) != (tgt is None):
        raise DataError(src or tgt or "", None, "give both --src and --tgt, or neither (stdin)")
    if src is not None and tgt is not None:
        sources, targets = read_lines(src), read_lines(tgt)
        if len(sources) != len(targets):
            raise DataError(tgt, None, f"{len(targets)} lines, but {src} has {len(sources)}")
        return sources, targets
    sources, targets = [], []
    for number, line in enumerate(read_lines("-", strip=False), 1):  # "\tTARGET": no source
        line = line.rstrip()  # a trailing tab or space is no empty target column
        if "\t" not in line:
            raise DataError("<stdin>", number, "expected SOURCE<TAB>TARGET")
        source, target = line.rsplit("\t", 1)
        sources.append(source.strip())
        targets.append(target.strip())
    return sources, targets
