"""``POST /v1/score``: the model's log-probability of given targets (teacher forced), for
reranking and filtering: ``{"texts": [...], "targets": [...]}`` -> per pair ``logprob``,
``normalized``, ``tokens`` and ``per_token``
(:meth:`transduce.inference.textdecoder.TextDecoder.score`).

Scoring runs on the server's one decode thread, after the request's limits: as many texts
and characters as a translation, and a compute budget counted as pairs x the longest target
(one hypothesis per step, as greedy decoding of that length would cost).
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request

from transduce.serve import schemas as s
from transduce.serve.errors import ApiError
from transduce.serve.limits import compute_cost
from transduce.serve.routes.common import ERRORS, BoundedState, arrived, decode_or_give_up
from transduce.serve.routes.translate import check_texts, pick

router = APIRouter(tags=["score"])


@router.post("/v1/score", response_model=s.ScoreResponse, responses=ERRORS)
async def score(body: s.ScoreRequest, request: Request, state: BoundedState) -> s.ScoreResponse:
    arrived(request)
    limits = state.limits
    name, model = pick(state.models, body.model, "text")
    texts = check_texts(body.texts, ("text",), limits)
    if len(body.targets) != len(texts):
        raise ApiError(
            422,
            "targets",
            f"{len(body.targets)} targets for {len(texts)} texts: give one target per text",
        )
    targets = check_texts(body.targets, ("text",), limits)
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
    start = time.perf_counter()
    work = asyncio.wrap_future(state.executor.submit(model.translator.score, texts, targets))
    found = await decode_or_give_up(request, state, name, work)
    ms = (time.perf_counter() - start) * 1000
    results = [s.PairScoreResult(**p.as_dict()) for p in found]
    return s.ScoreResponse(model=name, results=results, decode_ms=round(ms, 3))
