"""The search algorithms written once, against a tiny array interface (no torch here).

:mod:`transduce.inference.search` runs them on torch tensors
(:class:`~transduce.inference.search.TorchOps`),
:mod:`transduce.runtime` on numpy arrays over onnxruntime sessions
(:class:`transduce.inference.numpy_ops.NumpyOps`).
Both hand in a "model" with the step contract of ARCHITECTURE §2: ``encode``,
``init_state``, ``step``, ``head``, and ``select`` on its memory and state. Arrays are
used through their shared operators (indexing, arithmetic, comparisons, ``reshape``,
``sum``, ``all``) and the few :class:`Ops` methods where torch and numpy spell things
differently. This module must not import torch.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

from transduce.inference.rollout import rollout  # noqa: F401  (here too: the engines' one import)
from transduce.inference.searchrules import (  # the rules, importable from here as before
    block_repeated_ngrams,
    filter_logits,
    force_prefix,
    length_limits,
    length_penalty,
    prefix_limits,
    rank_score,
)

log = logging.getLogger("transduce.inference.translate")

BOS_ID, EOS_ID, PAD_ID = 1, 2, 0  # as in transduce.data.vocab
NEG_INF = float("-inf")


class Hypotheses(NamedTuple):
    tokens: Any  # [B, T] output ids without </s>, 0-padded
    lengths: Any  # [B] number of output tokens (</s> not counted)
    scores: Any  # [B] sum of log-probabilities, </s> included when produced
    attention: Any  # [B, T, S] weights per output token, or None


class NBest(NamedTuple):
    """Per sentence, up to ``nbest`` hypotheses sorted best first."""

    tokens: list[list[list[int]]]  # [sentence][rank] output ids without </s>
    scores: list[list[float]]  # ranking score (length-penalised when alpha > 0)
    logprobs: list[list[float]]  # raw sum of log-probabilities
    attention: list[list[Any]] | None  # [sentence][rank] -> [len, S]


# ---------------------------------------------------------------------- one row per hypothesis


def decode(
    ops,
    model,
    src,
    src_mask,
    max_len,
    max_len_ratio=None,
    choose=None,
    *,
    attention: bool = True,
    prefix=None,
    on_step=None,
) -> Hypotheses:
    """One hypothesis per row, token chosen by ``choose(logits [b, V]) -> [b]`` (default:
    the argmax, greedy decoding). Rows that finish leave the batch (``select``), so later
    steps run on unfinished rows only. ``attention``: keep the weights ``[B, T, S]``.
    ``prefix``: (ids ``[B, P]``, lengths ``[B]``) forced first (:func:`force_prefix`).
    ``on_step(rows, tokens)``: told each step's chosen tokens ``[b]`` of the live rows
    (their original indices ``[b]``), as they are produced (streaming). The keyword-only
    parameters here and in :func:`sample` and :func:`beam_search` are named as
    :class:`transduce.inference.decoding.DecodeOptions`' fields, which fill them by name."""
    choose, keep_attention, batch = choose or ops.argmax, attention, src.shape[0]
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    limits = prefix_limits(ops, length_limits(ops, src_mask, max_len, max_len_ratio), prefix)
    steps = int(limits.max()) if batch else 0
    tokens = ops.full((batch, steps), 0, "int", src)
    attention = None
    scores = ops.full((batch,), 0.0, "float", src)
    lengths = ops.full((batch,), 0, "int", src)
    active = ops.arange(batch, src)  # original row of each live row
    prev = ops.full((batch,), BOS_ID, "int", src)
    own = getattr(model, "log_probs", None)  # an export's head graph computes them itself
    rows, live_limits = slice(None), limits  # all rows live: plain slices, not index_put
    for t in range(steps):
        features, state, attn = model.step(prev, state, memory)
        if own is None:
            logits = ops.to_float(model.head(features))  # [b, V]
            logp = ops.log_softmax(logits)
        else:  # log-probabilities are logits too (the same argmax and softmax)
            logits = logp = own(features)
        if prefix is not None:
            logits = force_prefix(ops, logits, prefix, t, active)
        prev = choose(logits)
        if on_step is not None:
            on_step(active, prev)
        scores[rows] += ops.gather(logp, prev[:, None])[:, 0]
        tokens[rows, t] = prev
        if attn is not None and keep_attention:
            if attention is None:
                attention = ops.full((batch, steps, src.shape[1]), 0.0, "float", src)
            attention[active, t] = ops.to_float(attn)
        ended = prev == EOS_ID
        done = ended | (t + 1 >= live_limits)
        if bool(done.any()):  # (most steps end no row: no bookkeeping then)
            lengths[active[done]] = t + 1 - ops.to_int(ended[done])
            if bool(done.all()):
                break
            keep = ops.nonzero(~done)
            active, prev = active[keep], prev[keep]
            state, memory = state.select(keep), memory.select(keep)
            rows, live_limits = active, limits[active]
    width = int(lengths.max()) if batch else 0
    tokens = tokens[:, :width]
    valid = ops.arange(width, src)[None, :] < lengths[:, None]
    tokens = ops.where(valid, tokens, 0)
    if attention is not None:
        attention = attention[:, :width] * valid[:, :, None]
    return Hypotheses(tokens, lengths, scores, attention)


def sample(
    ops,
    model,
    src,
    src_mask,
    max_len,
    max_len_ratio=None,
    *,
    nbest: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    attention: bool = True,
    prefix=None,
    on_step=None,
) -> Hypotheses:
    """Ancestral sampling, ``nbest`` per sentence: rows ``i * nbest + j`` (see
    ``search.sample``); ``temperature=0`` is the argmax."""
    expanded = ops.repeat(ops.arange(src.shape[0], src), nbest)
    src, src_mask = ops.rows(src, expanded), ops.rows(src_mask, expanded)
    if prefix is not None:
        prefix = (ops.rows(prefix[0], expanded), ops.rows(prefix[1], expanded))
    generator = ops.generator(seed, src)

    def choose(logits):
        if temperature <= 0.0:
            return ops.argmax(logits)
        probs = ops.softmax(filter_logits(ops, logits / temperature, top_k, top_p))
        return ops.multinomial(probs, generator)

    limits = (max_len, max_len_ratio)
    return decode(
        ops,
        model,
        src,
        src_mask,
        *limits,
        choose,
        attention=attention,
        prefix=prefix,
        on_step=on_step,
    )


# ---------------------------------------------------------------------- beam search


class Beams:
    """The live part of a batched beam search: ``b`` sentences x ``k`` hypotheses."""

    def __init__(self, ops, batch: int, k: int, like, keep_attention: bool, src_len: int):
        self.ops, self.k = ops, k
        self.sentence = ops.arange(batch, like)  # original id of each live sentence
        self.scores = ops.full((batch, k), NEG_INF, "float", like)
        self.scores[:, 0] = 0.0  # the first step expands one hypothesis per sentence
        self.history = ops.full((batch * k, 0), 0, "int", like)
        self.attention = None  # [b * k, t, S] once a step has run
        self.keep_attention, self.src_len = keep_attention, src_len

    def expand(self, logp):
        """Top 2k continuations per sentence: (scores [b, 2k], beam [b, 2k], token [b, 2k]).

        A hypothesis' best continuations are its most probable tokens, so each one's top 2k
        tokens are the only candidates: the beam scores are added to those alone, not to the
        whole ``logp [b * k, V]``.
        """
        ops, b, vocab = self.ops, self.scores.shape[0], logp.shape[-1]
        n = min(2 * self.k, vocab)
        best, token = ops.topk(logp, n)  # [b * k, n]
        total = (self.scores.reshape(-1, 1) + best).reshape(b, self.k * n)  # [b, k * n]
        top, idx = ops.topk(total, min(2 * self.k, self.k * vocab))
        return top, idx // n, ops.gather(token.reshape(b, self.k * n), idx)

    def advance(self, top, beam, token, attn):
        """Keep the best k candidates that do not end; returns the flat rows they came from."""
        ops, b = self.ops, top.shape[0]
        # Stable sort puts continuing candidates first, in score order.
        order = ops.stable_argsort(ops.to_int(token == EOS_ID))[:, : self.k]  # [b, k]
        self.scores = ops.gather(top, order)
        rows = ops.gather(beam, order) + ops.arange(b, top)[:, None] * self.k
        rows = rows.reshape(-1)
        new_tokens = ops.gather(token, order).reshape(-1, 1)
        self.history = ops.cat([ops.rows(self.history, rows), new_tokens], 1)
        if self.keep_attention and attn is not None:
            past = None if self.attention is None else ops.rows(self.attention, rows)
            step = ops.rows(attn, rows)[:, None]  # [b * k, 1, S]
            self.attention = step if past is None else ops.cat([past, step], 1)
        return rows

    def drop(self, keep):
        """Retire finished sentences; returns the flat rows of the sentences kept."""
        rows = (keep[:, None] * self.k + self.ops.arange(self.k, keep)).reshape(-1)
        self.sentence, self.scores = self.sentence[keep], self.scores[keep]
        self.history = self.ops.rows(self.history, rows)
        if self.attention is not None:
            self.attention = self.ops.rows(self.attention, rows)
        return rows

    def add(self, finished, i: int, row: int, logprob: float, length: int, rank) -> None:
        att = None
        if self.keep_attention:
            att = (
                self.attention[row]
                if self.attention is not None
                else self.ops.full((0, self.src_len), 0.0, "float", self.scores)
            )  # ended before any step's attention
        finished[int(self.sentence[i])].append(
            (rank(logprob, length), logprob, self.history[row], att)
        )

    def finish_ended(self, finished, top, beam, token, t: int, rank) -> None:
        """Before advancing: hypotheses whose best continuation among each sentence's top k
        candidates is </s> are finished (their tokens are the history so far)."""
        k = self.k
        ends = self.ops.argwhere((token[:, :k] == EOS_ID) & (top[:, :k] > NEG_INF)).tolist()
        for i, r in ends:
            self.add(finished, i, i * k + int(beam[i, r]), float(top[i, r]), t + 1, rank)

    def finish_at_limit(self, finished, at_limit, t: int, rank) -> None:
        """After advancing: every live hypothesis of a sentence at its length limit ends."""
        for i in self.ops.nonzero(at_limit).tolist():
            for j in range(self.k):
                if float(self.scores[i, j]) > NEG_INF:
                    self.add(finished, i, i * self.k + j, float(self.scores[i, j]), t + 1, rank)

    def settled(self, finished, limits, n: int, alpha: float, normalize: bool):
        """Sentences ``[b]`` whose ``n`` best finished hypotheses no live hypothesis can
        still beat. Log-probabilities only fall as hypotheses grow, so a live one's best
        reachable score is its current log-probability under the most favourable length
        normalisation the sentence's limit allows."""
        alive = self.ops.max(self.scores, 1).tolist()  # [b]
        out = []
        for i, s in enumerate(self.sentence.tolist()):
            best = alive[i]
            limit = float(limits[s])
            if normalize:
                best = best / limit
            elif alpha > 0:
                best = best / length_penalty(limit, alpha)
            scores = sorted((h[0] for h in finished[s]), reverse=True)
            out.append(len(scores) >= n and scores[n - 1] >= best)
        return self.ops.tensor(out, "int", self.scores) > 0


def log_probs(ops, model, features):
    """Next-token log-probabilities ``[R, V]``: the model's own ``log_probs`` where it has
    one (an export's head graph), else log-softmax of its head's logits."""
    own = getattr(model, "log_probs", None)
    return own(features) if own is not None else ops.log_softmax(ops.to_float(model.head(features)))


def beam_search(
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
    prefix=None,
) -> NBest:
    """Batched beam search of width ``beam`` (see ``transduce.inference.search.beam_search``);
    ``prefix`` as in :func:`decode`."""
    k, ratio, keep_attention = beam, max_len_ratio, attention
    if not 1 <= nbest <= k:
        raise ValueError(f"nbest must be between 1 and the beam size ({k}), got {nbest}")
    batch = src.shape[0]
    finished: list[list[tuple]] = [[] for _ in range(batch)]
    rank = lambda lp, n: rank_score(lp, n, alpha, normalize)  # noqa: E731
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    limits = prefix_limits(ops, length_limits(ops, src_mask, max_len, ratio), prefix)
    beams = Beams(ops, batch, k, src, keep_attention, src.shape[1])
    prev = ops.full((batch,), BOS_ID, "int", src)
    for t in range(int(limits.max()) if batch else 0):
        features, state, attn = model.step(prev, state, memory)
        logp = log_probs(ops, model, features)  # [b * k, V]
        if t == 0:  # the k start hypotheses are the same: one step per sentence, then copies
            copies = ops.repeat(ops.arange(batch, src), k)
            logp, state, memory = logp[copies], state.select(copies), memory.select(copies)
            attn = None if attn is None else attn[copies]
        if no_repeat_ngram:
            logp = block_repeated_ngrams(ops, logp, beams.history, no_repeat_ngram)
        if prefix is not None:
            logp = force_prefix(ops, logp, prefix, t, ops.repeat(beams.sentence, k))
        top, beam, token = beams.expand(logp)
        beams.finish_ended(finished, top, beam, token, t, rank)
        rows = beams.advance(top, beam, token, attn)
        state = state.select(rows)
        at_limit = t + 1 >= limits[beams.sentence]
        beams.finish_at_limit(finished, at_limit, t, rank)
        done = at_limit | beams.settled(finished, limits.tolist(), nbest, alpha, normalize)
        if bool(done.all()):
            break
        if bool(done.any()):
            rows = beams.drop(ops.nonzero(~done))
            state, memory = state.select(rows), memory.select(rows)
        prev = beams.history[:, -1]
    return collect(finished, nbest, keep_attention)


def collect(finished: list[list[tuple]], nbest: int, keep_attention: bool) -> NBest:
    """The ``nbest`` best finished hypotheses of every sentence, best first."""
    tokens, scores, logprobs, attention = [], [], [], []
    for hyps in finished:
        best = sorted(hyps, key=lambda h: -h[0])[:nbest]
        tokens.append([h[2].tolist() for h in best])
        scores.append([h[0] for h in best])
        logprobs.append([h[1] for h in best])
        attention.append([h[3] for h in best])
    return NBest(tokens, scores, logprobs, attention if keep_attention else None)
