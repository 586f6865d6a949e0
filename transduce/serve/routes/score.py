"""``POST /v1/score``: the model's log-probability of given targets (teacher forced), for
reranking and filtering: ``{"texts": [...], "targets": [...]}`` -> per pair ``logprob``,
``normalized``, ``tokens`` and ``per_token``
(:meth:`transduce.inference.textdecoder.TextDecoder.score`).

Scoring runs on the server's one decode thread, after the request's limits: as many texts
and characters as a translation, and a compute budget counted as pairs x the longest target
(one hypothesis per step, as greedy decoding of that length would cost). Like a translation
it runs in chunks bounded by ``--max-batch-size`` and ``--max-batch-work`` (a pair's work
counted as a greedy decode of its target's length, :func:`batch_work`), one chunk on the
decode thread at a time, so other requests' batches take turns with it and a client that
leaves stops it after the running chunk (as one call, 255 long pairs had held the thread a
minute, past their client, and ~1.2 GB).
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request

from transduce.serve import schemas as s
from transduce.serve.errors import ApiError
from transduce.serve.limits import batch_work, compute_cost, spans
from transduce.serve.routes.common import ERRORS, BoundedState, arrived, decode_or_give_up
from transduce.serve.routes.translate import check_input_tokens, check_texts, pick

router = APIRouter(tags=["score"])


@router.post("/v1/score", response_model=s.ScoreResponse, responses=ERRORS)
async def score(body: s.ScoreRequest, request: Request, state: BoundedState) -> s.ScoreResponse:
    arrived(request)
    limits = state.limits
    name, model = pick(state.models, body.model, "text")
    texts = check_texts(body.texts, ("text",), limits)
    check_input_tokens(texts, model)
    if len(body.targets) != len(texts):
        raise ApiError(
            422,
            "targets",
            f"{len(body.targets)} targets for {len(texts)} texts: give one target per text",
        )
    targets = check_texts(body.targets, ("text",), limits, "targets")
    overflow = getattr(model.translator, "target_overflow", None)  # CTranslate2's table
    for i, target in enumerate(targets if overflow else ()):
        if (why := overflow(target)) is not None:
            raise ApiError(422, f"targets[{i}]", why)
    steps = max(len(t) for t in targets) + 1  # a token is at most one character, then </s>
    cost = compute_cost(len(texts), 1, 1, False, steps)
    if cost > limits.max_compute:
        raise ApiError(
            422,
            "targets",
            f"pairs x (longest target + 1) = {len(texts)} x {steps} "
            f"= {cost:,} is over this server's budget of {limits.max_compute:,} "
            "(--max-compute): split the request",
        )
    chunks = _chunks(texts, targets, limits.max_batch_size, limits.max_batch_work)
    start = time.perf_counter()
    work = _score_chunks(state, model.translator.score, texts, targets, chunks)
    found = await decode_or_give_up(request, state, name, work)
    ms = (time.perf_counter() - start) * 1000
    results = [s.PairScoreResult(**p.as_dict()) for p in found]
    return s.ScoreResponse(model=name, results=results, decode_ms=round(ms, 3))


def _chunks(texts: list[str], targets: list[str], most: int, limit: int) -> list[range]:
    """Pairs in chunks of at most ``most`` and ``limit`` work; a pair over ``limit`` by
    itself is refused (a chunk cannot split a pair)."""
    costs = []
    for i, (text, target) in enumerate(zip(texts, targets, strict=True)):
        work = batch_work(len(text), 1, 1, False, len(target) + 1)
        if work > limit:
            raise ApiError(
                422,
                f"texts[{i}]",
                f"(target characters + 9) x source characters = {len(target) + 9} x "
                f"{len(text)} = {work:,} is over this server's {limit:,} per pair "
                "(--max-batch-work): send a shorter text or target",
            )
        costs.append(work)
    return spans(costs, most, limit)


async def _score_chunks(state, score, texts, targets, chunks: list[range]) -> list:
    """Each chunk on the decode thread in turn; cancelled between chunks."""
    found: list = []
    for r in chunks:
        job = state.executor.submit(score, texts[r.start : r.stop], targets[r.start : r.stop])
        found += await asyncio.wrap_future(job)
    return found
