"""The small pure rules every search shares, against the same array interface as
:mod:`transduce.inference.searchcore` (no torch here): the length penalty and ranking score, output
length limits, forced target prefixes, n-gram blocking and top-k / top-p filtering."""

from __future__ import annotations

import logging
import math

from transduce.errors import DataError

log = logging.getLogger("transduce.inference.translate")

NEG_INF = float("-inf")
PAD_ID = 0  # as in transduce.data.vocab


def length_penalty(length, alpha: float):
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, eq. 14); 1 at alpha=0."""
    return ((5.0 + length) / 6.0) ** alpha


def rank_score(logprob: float, length: int, alpha: float, normalize: bool) -> float:
    """The beam's ranking score: per token (``normalize``) or GNMT-penalised."""
    if normalize:
        return logprob / max(length, 1)
    return logprob / float(length_penalty(float(length), alpha))


def output_limits(lengths: list[int], max_len: int, max_len_ratio: float | None) -> list[int]:
    """Per-sentence output limit: ``max_len``, or ``ceil(ratio * |src|) + 5`` capped."""
    if max_len_ratio is None:
        return [max_len] * len(lengths)
    # A tiny tolerance, so exact products (1.2 * 25 = 30) do not round up; a product
    # beyond max_len (a config's ratio of 1e308 overflows to inf) is max_len.
    out = []
    for n in lengths:
        want = n * max_len_ratio - 1e-9
        out.append(max_len if want >= max_len else min(max_len, math.ceil(want) + 5))
    return out


def limit_inputs(
    tokens: list[list[str]], max_len: int | None, policy: str, first_line: int = 1
) -> list[list[str]]:
    """Apply the inference length limit: ``truncate`` to ``max_len`` tokens, ``skip`` (an
    empty output) or ``error``; each over-long line is named in a warning (the first few)."""
    long = [i for i, t in enumerate(tokens) if max_len and len(t) > max_len]
    for n, i in enumerate(long):
        where = f"input line {first_line + i}"
        if policy == "error":
            raise DataError(
                "<input>",
                first_line + i,
                f"{len(tokens[i]):,} source tokens, "
                f"over decode.max_input_len={max_len} (--max-input-len)",
            )
        if n < 5:
            done = f"truncated to {max_len}" if policy == "truncate" else "skipped (empty output)"
            log.warning(
                "%s: %s source tokens, %s (decode.max_input_len; --max-input-len, --on-long-input)",
                where,
                f"{len(tokens[i]):,}",
                done,
            )
        tokens[i] = tokens[i][:max_len] if policy == "truncate" else []
    if len(long) > 5:
        log.warning("%d over-long input lines in all (%s)", len(long), policy)
    return tokens


def length_limits(ops, src_mask, max_len: int, max_len_ratio: float | None = None):
    """:func:`output_limits` as an int array ``[B]`` of ``ops``."""
    lengths = [int(n) for n in src_mask.sum(1).tolist()]
    return ops.tensor(output_limits(lengths, max_len, max_len_ratio), "int", like=src_mask)


def force_prefix(ops, logp, prefix, t: int, rows):
    """Rows still inside their target prefix at step ``t``: every token but the prefix's
    next becomes -inf, so the search (greedy, beam or sampling) is forced through it and
    scores it with the model's own log-probabilities. ``logp [R, V]``; ``prefix``: (ids
    ``[B, P]``, lengths ``[B]``) or None; ``rows [R]``: the sentence of each row."""
    if prefix is None or t >= prefix[0].shape[1]:
        return logp
    ids, lengths = prefix
    inside = lengths[rows] > t  # [R]
    want = ids[:, t][rows]  # [R]
    allowed = ops.arange(logp.shape[-1], logp)[None, :] == want[:, None]  # [R, V]
    return ops.where(inside[:, None] & ~allowed, NEG_INF, logp)


def prefix_limits(ops, limits, prefix):
    """Length limits ``[B]`` raised to the prefix lengths: the output holds the prefix."""
    return limits if prefix is None else ops.where(limits < prefix[1], prefix[1], limits)


def block_repeated_ngrams(ops, logp, history, n: int):
    """Forbid tokens that would repeat an n-gram already in ``history`` (Paulus et al. 2018).

    logp ``[R, V]``, history ``[R, t]`` -> logp with -inf at forbidden (row, token) pairs.
    """
    if n <= 0 or history.shape[1] < n:  # no complete n-gram yet
        return logp
    if n == 1:
        return ops.scatter(logp, history, NEG_INF)
    grams = ops.windows(history, n)  # [R, t - n + 1, n] every n-gram so far
    tail = history[:, history.shape[1] - (n - 1) :]  # [R, n - 1] the current prefix
    hit = (grams[:, :, :-1] == tail[:, None, :]).all(-1)  # [R, t - n + 1]
    # Where no n-gram matches, the scatter lands on <pad> (never a real output) instead.
    banned = ops.where(hit, grams[:, :, -1], PAD_ID)
    return ops.scatter(logp, banned, NEG_INF)


def filter_logits(ops, logits, top_k: int = 0, top_p: float = 1.0):
    """Keep the ``top_k`` largest logits and the smallest set whose probability reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2020); the rest become -inf. ``[R, V]``."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = ops.topk(logits, top_k)[0][:, -1:]  # [R, 1]
        logits = ops.where(logits < kth, NEG_INF, logits)
    if top_p < 1.0:
        sorted_logits, order = ops.sort_desc(logits)
        probs = ops.softmax(sorted_logits)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        drop = (probs.cumsum(-1) - probs) >= top_p
        logits = ops.scatter(logits, order, ops.where(drop, NEG_INF, sorted_logits))
    return logits
