"""What the API routes share: the cheap shape check before validation, and running a
request's decode so that it stops when the client goes away or its time runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, Request

from transduce.inference.decoding import Translation
from transduce.serve import schemas as s
from transduce.serve.errors import ApiError
from transduce.serve.state import ServeState, get_state, ready_state

State = Annotated[ServeState, Depends(get_state)]
ReadyState = Annotated[ServeState, Depends(ready_state)]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.ErrorResponse} for code in (400, 404, 411, 413, 422, 503)
}


def arrived(request: Request) -> None:
    """The request is parsed and about to queue: the batcher need not wait for it."""
    token = request.scope.get("transduce.arrival")
    if token is not None:
        token.leave()


def _check_walk(body: Any, most: int, max_keys: int) -> None:
    """One walk of the body (iterative: no recursion): no list anywhere longer than
    ``most`` (a request's texts or a series' values are the longest there are: validation
    would report every wrong item of a longer one, and 2 M of them in ``constraints`` or
    ``timestamps`` held the server 45 s), and no more than ``max_keys`` object keys at
    every level together (pydantic would list every unknown one)."""
    keys, stack = 0, [(body, "")]
    while stack:
        x, where = stack.pop()
        if isinstance(x, dict):
            keys += len(x)
            stack.extend(
                (v, f"{where}.{k}" if where else str(k))
                for k, v in x.items()
                if isinstance(v, dict | list)
            )
        elif isinstance(x, list):
            if len(x) > most:
                raise ApiError(422, where[:80] or "body", f"{len(x)} items: at most {most}")
            stack.extend(
                (v, f"{where}[{i}]") for i, v in enumerate(x) if isinstance(v, dict | list)
            )
    if keys > max_keys:
        raise ApiError(422, "body", f"more than {max_keys} keys in the body")


async def bounded_body(request: Request, state: ReadyState) -> ServeState:
    """Dependency run after the JSON is parsed and before it is validated: a body with more
    object keys than ``max_keys`` is refused at once (pydantic would list every unknown
    key, which costs seconds and megabytes for a few hundred thousand of them)."""
    check_shape(raw_json(request), state.limits)
    return state


def check_shape(body: Any, limits: Any) -> None:
    """Long lists and too many keys refused (ApiError) before validation walks them."""
    lists = {"texts": limits.max_texts, "series": limits.max_texts}
    if isinstance(body, dict):  # long lists refused before anything walks every element
        for key, most in lists.items():
            if isinstance(body.get(key), list) and len(body[key]) > most:
                raise ApiError(422, key, f"{len(body[key])} items: at most {most}")
    _check_walk(body, max(limits.max_texts, limits.max_values), limits.max_keys)


def raw_json(request: Request) -> Any:
    """The body as FastAPI parsed (and cached) it just before the dependencies run."""
    return getattr(request, "_json", None)


BoundedState = Annotated[ServeState, Depends(bounded_body)]


async def _client_gone(request: Request) -> None:
    """Returns once the client disconnects (the body is read: the next message is that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def decode_or_give_up(request: Request, state: ServeState, model: str, work: Awaitable):
    """Await ``work`` (a batcher submission); cancel it -- its remaining batches are
    dropped -- if the client disconnects or ``decode_timeout_s`` passes."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_client_gone(request))
    timeout = state.limits.decode_timeout_s
    try:
        done, _ = await asyncio.wait(
            {task, watch}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        watch.cancel()
    if task in done:
        return task.result()
    task.cancel()
    reason = "disconnected" if watch in done else "timeout"
    state.metrics.dropped.labels(model, reason).inc()
    if reason == "disconnected":  # nobody reads this reply; 499 as in nginx's logs
        raise ApiError(499, "body", "the client closed the connection")
    raise ApiError(
        503,
        "body",
        f"the decode took longer than {timeout:g} s and was stopped: "
        "send fewer or shorter texts, or lower beam or max_len",
    )


def translation_result(hyps: list[Translation], body: s.TranslateRequest) -> dict[str, Any]:
    """One input's n-best list as the response gives it (plain or streamed): the JSON of
    :class:`transduce.serve.schemas.TranslationResult`, built directly (a reply is rendered
    without pydantic: validating and dumping it again was a tenth of a request's time)."""
    tokens = body.return_tokens or body.return_attention

    def one(h: Translation) -> dict[str, Any]:
        att = None
        if body.return_attention and h.attention is not None:
            att = np.round(h.attention.astype(np.float64), 4).tolist()
        return {
            "text": h.text,
            "score": float(h.score),
            "logprob": None if h.logprob is None else float(h.logprob),
            "tokens": list(h.out_tokens) if tokens else None,
            "attention": att,
        }

    src = list(hyps[0].src_tokens) if tokens else None
    return {"src_tokens": src, "hypotheses": [one(h) for h in hyps]}


def unicode_text(text: str, where: str) -> str:
    """A lone surrogate (``\\ud800`` in the JSON) is no text: refused, not decoded."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ApiError(
            422, where, f"not valid Unicode text (a lone surrogate at character {err.start})"
        ) from None
    return text
