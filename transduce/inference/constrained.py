"""Lexically constrained beam search: every given target phrase appears in the output.

The algorithm is dynamic beam allocation (Post & Vilar 2018, "Fast Lexically Constrained
Decoding with Dynamic Beam Allocation for Neural Machine Translation", NAACL): at each step
the candidates are each hypothesis' best tokens plus the tokens that start or continue one
of its unmet constraints; they are grouped into banks by the number of constraint tokens
met, and the ``beam`` slots are dealt out to the banks in turn (most constraint tokens
first), a bank with too few candidates passing its slots on. ``</s>`` is allowed only once
every constraint is met. Unlike grid beam search (Hokamp & Liu 2017) the beam does not grow
with the number of constraints.

It runs over the step contract and the array ops of :mod:`transduce.inference.searchcore` (torch or
numpy): the model's steps and ``select`` stay on the engine's arrays, while the constraint
bookkeeping, a few candidates per hypothesis, is host-side. No torch is imported here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from transduce.inference.numpy_ops import NumpyOps
from transduce.inference.searchcore import BOS_ID, EOS_ID, NBest, log_probs
from transduce.inference.searchrules import (
    block_repeated_ngrams,
    length_limits,
    length_penalty,
    prefix_limits,
    rank_score,
)

HOST = NumpyOps()


class Progress(NamedTuple):
    """A hypothesis' progress through its constraints: ``met`` (bit c: phrase c done), the
    phrase under way (``current``, -1: none) and how many of its tokens are out."""

    met: int = 0
    current: int = -1
    pos: int = 0


def advance(p: Progress, token: int, phrases: list[list[int]]) -> Progress:
    """``p`` after ``token``: a phrase under way continues or breaks off (its progress is
    lost, and the token may start another unmet phrase)."""
    met = p.met
    if p.current >= 0:
        phrase = phrases[p.current]
        if phrase[p.pos] == token:
            if p.pos + 1 == len(phrase):
                return Progress(met | 1 << p.current)
            return Progress(met, p.current, p.pos + 1)
    for c, phrase in enumerate(phrases):
        if not met >> c & 1 and phrase[0] == token:
            return Progress(met | 1 << c) if len(phrase) == 1 else Progress(met, c, 1)
    return Progress(met)


def wanted(p: Progress, phrases: list[list[int]]) -> set[int]:
    """The tokens that move ``p`` forward: the next of the phrase under way, else the first
    of every unmet phrase."""
    if p.current >= 0:
        return {phrases[p.current][p.pos]}
    return {phrase[0] for c, phrase in enumerate(phrases) if not p.met >> c & 1}


def tokens_met(p: Progress, phrases: list[list[int]]) -> int:
    """The bank of ``p``: constraint tokens met (done phrases, and the one under way)."""
    done = sum(len(phrase) for c, phrase in enumerate(phrases) if p.met >> c & 1)
    return done + (p.pos if p.current >= 0 else 0)


class Hyp(NamedTuple):
    score: float  # sum of log-probabilities
    tokens: tuple[int, ...]
    progress: Progress
    attention: tuple[Any, ...]  # one [S] array per output token (when kept)


def allocate(candidates: list[tuple[float, int, int, Progress]], k: int, banks: int, phrases):
    """Dynamic beam allocation: ``candidates`` (score, row, token, progress), best first ->
    up to ``k`` of them, dealt out to the banks in turn, most constraint tokens first."""
    bank: list[list] = [[] for _ in range(banks + 1)]
    for c in candidates:
        bank[tokens_met(c[3], phrases)].append(c)
    chosen: list = []
    depth = 0
    while len(chosen) < k and any(depth < len(b) for b in bank):
        for b in reversed(bank):
            if depth < len(b) and len(chosen) < k:
                chosen.append(b[depth])
        depth += 1
    return sorted(chosen, key=lambda c: -c[0])


def _candidates(logp: np.ndarray, top: np.ndarray, hyps: list[Hyp], phrases, forced):
    """Every (score, row, token, progress) a sentence's hypotheses may continue with:
    each one's best tokens (``top [R, k]``) and those its constraints want (``forced``: the
    prefix's token, the only choice). ``logp [R, V]`` has </s> at -inf already where a
    hypothesis still misses a phrase."""
    out = []
    for r, h in enumerate(hyps):
        row = logp[r]
        tokens = {forced} if forced is not None else set(top[r].tolist())
        if forced is None:
            tokens |= wanted(h.progress, phrases)
        for tok in tokens:
            score = h.score + float(row[tok])
            if score > -np.inf:
                out.append((score, r, tok, advance(h.progress, tok, phrases)))
    out.sort(key=lambda c: -c[0])
    return out


def _reachable(hyps: list[Hyp], limit: int, alpha: float, normalize: bool) -> float:
    """The best rank a live hypothesis may still reach (log-probabilities only fall)."""
    best = max(h.score for h in hyps)
    if normalize:
        return best / limit
    return best / length_penalty(limit, alpha) if alpha > 0 else best


def constrained_beam_search(
    ops,
    model,
    src,
    src_mask,
    max_len,
    max_len_ratio=None,
    *,
    beam: int,
    nbest: int = 1,
    alpha: float = 0.0,
    normalize: bool = False,
    no_repeat_ngram: int = 0,
    attention: bool = True,
    constraints: list[list[list[int]]],
    prefix=None,
) -> NBest:
    """Beam search of width ``beam`` whose outputs contain every phrase of
    ``constraints[i]`` (token ids) for sentence ``i``, by dynamic beam allocation (Post &
    Vilar 2018). Ranking, ``nbest``, ``alpha``/``normalize`` and ``prefix`` as in
    :func:`transduce.inference.searchcore.beam_search`. A sentence none of whose hypotheses meets
    its
    constraints within its length limit gets its best incomplete ones."""
    k, batch = beam, src.shape[0]
    limits = prefix_limits(ops, length_limits(ops, src_mask, max_len, max_len_ratio), prefix)
    limits = limits.tolist()
    forced = None if prefix is None else (np.array(prefix[0].tolist()), prefix[1].tolist())
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    live = {i: [Hyp(0.0, (), Progress(), ())] for i in range(batch)}
    finished: list[list[tuple]] = [[] for _ in range(batch)]
    prev = ops.full((batch,), BOS_ID, "int", src)
    for t in range(max(limits) if batch else 0):
        features, state, attn = model.step(prev, state, memory)
        scores = log_probs(ops, model, features)  # [R, V]
        n = min(k + 1, scores.shape[-1])  # k + 1: k remain where </s> is dropped
        top = ops.to_numpy(ops.topk(scores, n)[1]).astype(np.int64)  # [R, k + 1]
        logp = ops.to_numpy(scores).astype(np.float64)
        attn = ops.to_numpy(attn) if attn is not None and attention else None
        logp[eos_banned(live, constraints), EOS_ID] = -np.inf  # no </s> before every phrase
        rows, nxt, offset = [], {}, 0
        for i, hyps in live.items():
            part = logp[offset : offset + len(hyps)]
            if no_repeat_ngram and t:
                history = np.array([h.tokens for h in hyps], dtype=np.int64)
                part = block_repeated_ngrams(HOST, part, history, no_repeat_ngram)
            force = int(forced[0][i, t]) if forced and t < forced[1][i] else None
            best = top[offset : offset + len(hyps)]
            step = (part, best, hyps, constraints[i], force, attn, offset, t)
            new, kept = _step_sentence(step, limits[i], finished[i], (k, nbest, alpha, normalize))
            if new:
                nxt[i] = new
                rows += kept
            offset += len(hyps)
        if not nxt:
            break
        live = nxt
        index = ops.tensor(rows, "int", src)
        state, memory = state.select(index), memory.select(index)
        prev = ops.tensor([h.tokens[-1] for hyps in live.values() for h in hyps], "int", src)
    return _collect(finished, nbest, attention, src.shape[1])


def _step_sentence(step, limit: int, finished: list, opts) -> tuple[list[Hyp] | None, list[int]]:
    """One sentence's search step: grow its hypotheses within the allocation, move ended
    ones to ``finished``; the hypotheses to keep (None once the sentence is done) and the
    rows they come from."""
    part, best, hyps, phrases, force, attn, offset, t = step
    k, nbest, alpha, normalize = opts
    cands = _candidates(part, best, hyps, phrases, force)
    for s, r, _, p in (c for c in cands[:k] if c[2] == EOS_ID):
        h = _grow(hyps[r], s, EOS_ID, p, None, 0)
        rank = rank_score(s, t + 1, alpha, normalize)
        finished.append((rank, s, h.tokens[:-1], hyps[r].attention, 1))
    keep = [c for c in cands if c[2] != EOS_ID]
    chosen = allocate(keep, k, sum(len(p) for p in phrases), phrases)
    new = [_grow(hyps[r], s, tok, p, attn, offset + r) for s, r, tok, p in chosen]
    complete = (1 << len(phrases)) - 1
    if new and t + 1 >= limit:
        for h in new:
            rank = rank_score(h.score, t + 1, alpha, normalize)
            finished.append((rank, h.score, h.tokens, h.attention, int(h.progress.met == complete)))
        return None, []
    if new and not _settled(finished, new, nbest, limit, alpha, normalize):
        return new, [offset + r for _, r, _, _ in chosen]
    return None, []


def eos_banned(live: dict[int, list[Hyp]], constraints) -> np.ndarray:
    """Rows (in live order) whose hypothesis still misses a phrase: no </s> for them."""
    return np.array(
        [h.progress.met != (1 << len(constraints[i])) - 1 for i, hyps in live.items() for h in hyps]
    )


def _grow(h: Hyp, score: float, token: int, progress: Progress, attn, row: int) -> Hyp:
    step = () if attn is None else (attn[row],)
    return Hyp(score, (*h.tokens, token), progress, h.attention + step)


def _settled(finished, hyps: list[Hyp], n: int, limit: int, alpha: float, normalize: bool):
    """Whether ``n`` complete finished hypotheses rank above all a live one may reach."""
    done = sorted((f[0] for f in finished if f[4]), reverse=True)
    return len(done) >= n and done[n - 1] >= _reachable(hyps, limit, alpha, normalize)


def _collect(finished: list[list[tuple]], nbest: int, keep_attention: bool, src_len: int):
    """Per sentence the ``nbest`` best finished hypotheses, complete ones first."""
    tokens, scores, logprobs, attention = [], [], [], []
    for hyps in finished:
        best = sorted(hyps, key=lambda h: (-h[4], -h[0]))[:nbest]
        best = best or [(float("-inf"), float("-inf"), (), (), 0)]  # every token was -inf
        tokens.append([list(h[2]) for h in best])
        scores.append([h[0] for h in best])
        logprobs.append([h[1] for h in best])
        attention.append(
            [np.stack(h[3]) if h[3] else np.zeros((0, src_len), np.float32) for h in best]
        )
    return NBest(tokens, scores, logprobs, attention if keep_attention else None)
