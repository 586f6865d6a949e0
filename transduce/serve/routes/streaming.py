"""What ``POST /v1/translate`` adds for target prefixes, terminology constraints and
streamed replies.

``targeted`` checks a request's ``prefix`` and ``constraints`` (their counts, sizes and
the compute budget: constrained search costs about one more beam per phrase) and turns the
texts into batcher items that carry them. ``streamed`` answers with server-sent events:
``token`` events with each text's output so far as greedy decoding or sampling produces it,
one ``result`` event per text (its hypotheses, as the JSON reply holds them; beam search
has only these), then ``done`` -- or ``error``. A streamed request decodes on the server's
one decode thread by itself, in chunks bounded as the micro-batcher bounds a batch (other
requests' batches take turns between them: as one job, 32 long texts had held the thread
12 s), and stops when its client goes away or its time runs out.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from transduce.errors import DataError, OptionError
from transduce.inference.decoding import DecodeOptions
from transduce.serve.backend import TextItem, decode_items
from transduce.serve.batcher import DecodeCancelled, _decode_batch
from transduce.serve.errors import ApiError
from transduce.serve.limits import ServeLimits, compute_cost, spans
from transduce.serve.middleware import ClientStalled
from transduce.serve.routes.common import translation_result, unicode_text
from transduce.serve.state import ServeState

MAX_PHRASES = 16  # constraint phrases per text


def targeted(
    texts: list[str], body: Any, model: Any, options: DecodeOptions, limits: ServeLimits
) -> list[str]:
    """The texts as batcher items with their prefix and constraints (422 naming the field
    for a wrong count, an oversized phrase, an engine that cannot, or too much work)."""
    n = len(texts)
    prefixes = body.prefix if isinstance(body.prefix, list) else [body.prefix or ""] * n
    if len(prefixes) != n:
        raise ApiError(
            422,
            "prefix",
            f"{len(prefixes)} prefixes for {n} texts: give one string, or one per text",
        )
    constraints = body.constraints if body.constraints is not None else [[] for _ in texts]
    if len(constraints) != n:
        raise ApiError(
            422,
            "constraints",
            f"{len(constraints)} lists for {n} texts: give one list of phrases per text",
        )
    for i, (prefix, phrases) in enumerate(zip(prefixes, constraints, strict=True)):
        where = "prefix" if isinstance(body.prefix, str) else f"prefix[{i}]"
        unicode_text(prefix, where)
        if len(prefix) > limits.max_chars:
            raise ApiError(422, where, f"{len(prefix)} characters: at most {limits.max_chars}")
        too_long = model.translator.prefix_overflow(prefix) if prefix else None
        if too_long is not None:  # CTranslate2's position table: it raised, a 500
            raise ApiError(422, where, too_long)
        unknown = model.translator.unproducible(prefix) if prefix else None
        if unknown is not None:  # forced, it would begin the output with <unk>
            shown = unknown[:40].encode("ascii", "backslashreplace").decode()
            raise ApiError(422, where, f"{shown!r} is not in the target vocabulary")
        if len(phrases) > MAX_PHRASES or sum(map(len, phrases)) > limits.max_chars:
            raise ApiError(
                422,
                f"constraints[{i}]",
                f"at most {MAX_PHRASES} phrases of {limits.max_chars} characters in all",
            )
    if any(constraints):
        try:
            model.translator.check_inputs(options, constraints)
        except OptionError as err:
            raise ApiError(422, err.field, err.message.removeprefix(f"{err.field}: ")) from None
        for i, phrases in enumerate(constraints):  # before queueing: not a failed batch
            for phrase in filter(str.strip, phrases):
                unknown = model.translator.unproducible(phrase)
                if unknown is not None:
                    shown = unknown[:40].encode("ascii", "backslashreplace").decode()
                    raise ApiError(
                        422,
                        f"constraints[{i}]",
                        f"{shown!r} is not in the target vocabulary: no output can contain it",
                    )
        most = max(len(p) for p in constraints)
        max_len = (options.max_len or model.max_len) + max(map(len, prefixes))
        cost = compute_cost(n, options.beam, options.nbest, False, max_len) * (1 + most)
        if cost > limits.max_compute:
            raise ApiError(
                422,
                "constraints",
                f"texts x beam x max_len x (1 + phrases) = "
                f"{cost:,} is over this server's budget of {limits.max_compute:,} "
                "(--max-compute): fewer texts or phrases, or a lower beam",
            )
    if not any(prefixes) and not any(constraints):
        return texts
    return [TextItem(t, p, c) for t, p, c in zip(texts, prefixes, constraints, strict=True)]


def _event(kind: str, data: dict) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def streamed(
    request: Request,
    state: ServeState,
    name: str,
    model: Any,
    items: list[str],
    options: DecodeOptions,
    body: Any,
) -> StreamingResponse:
    """Server-sent events of one request's decode (see the module's docstring)."""
    if request.scope.get("http_version") == "1.0":  # its events need chunked replies
        raise ApiError(422, "stream", "a streamed reply needs HTTP/1.1: send without stream")
    stream = _Stream(state, name, model, items, options, body)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return _Response(
        stream.guarded(), stream.deadline, media_type="text/event-stream", headers=headers
    )


class _Response(StreamingResponse):
    """Server-sent events whose every write waits at most until the request's deadline
    (and a second): a client that stops reading had held its connection, its decode and
    its share of the in-flight body budget for as long as it kept the socket open. Past
    it, the reply stops (:class:`ClientStalled`) and uvicorn closes the connection."""

    def __init__(self, content, deadline: float, **kwargs) -> None:
        super().__init__(content, **kwargs)
        self.deadline = deadline

    async def stream_response(self, send) -> None:
        async def timed(message) -> None:
            left = max(self.deadline - time.monotonic(), 0.0) + 1.0
            try:
                await asyncio.wait_for(send(message), timeout=left)
            except TimeoutError:
                raise ClientStalled("the client stopped reading its stream; closed") from None

        await super().stream_response(timed)


class _Stream:
    """One streamed request: its chunks decoded on the decode thread one after another,
    each token passed to the event loop as it comes, stopped when the client leaves or
    ``decode_timeout_s`` passes."""

    def __init__(self, state: ServeState, name: str, model: Any, items: list, options, body):
        self.state, self.name, self.model = state, name, model
        self.items, self.options, self.body = items, options, body
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()
        self.gone = False
        limit = state.limits.decode_timeout_s
        self.deadline = time.monotonic() + limit
        self.late = f"the decode took longer than {limit:g} s and was stopped"

    def stop(self) -> bool:
        return self.gone or time.monotonic() > self.deadline

    def run(self, span: range) -> list:
        """One chunk, on the decode thread."""

        def on_token(i: int, j: int, text: str) -> None:
            if self.stop():
                raise DecodeCancelled
            data = {"index": span.start + i, "hypothesis": j, "text": text}
            self.loop.call_soon_threadsafe(self.events.put_nowait, ("token", data))

        decode = lambda xs, o: decode_items(self.model.translator, xs, o, on_token)  # noqa: E731
        return _decode_batch(decode, self.items[span.start : span.stop], self.options, self.stop)

    def ended(self, work: asyncio.Future) -> None:
        if not work.cancelled():
            work.exception()  # seen: a decode stopped after its client left is no error to log
        self.events.put_nowait(None)

    def _timed_out(self) -> str:
        self.state.metrics.dropped.labels(self.name, "timeout").inc()
        return _event("error", {"field": "body", "error": self.late})

    async def produce(self):
        start = time.perf_counter()
        observe = self.state.metrics.observer(self.name)
        batcher = self.state.batchers[self.name]
        costs = [batcher.cost(x, self.options) if batcher.cost else 0 for x in self.items]
        for span in spans(costs, batcher.max_batch_size, batcher.max_cost):
            if self.stop():
                yield self._timed_out()
                return
            began = time.perf_counter()
            work = self.loop.run_in_executor(self.state.executor, self.run, span)
            work.add_done_callback(self.ended)
            while (item := await self.events.get()) is not None:
                yield _event(*item)
            try:
                found = work.result()
            except DecodeCancelled:
                yield self._timed_out()
                return
            except (DataError, OptionError, ValueError) as err:
                yield _event("error", {"field": "texts", "error": str(err)})
                return
            observe(len(span), time.perf_counter() - began)
            for i, hyps in enumerate(found):  # as each chunk ends: a stream stopped by its
                # deadline keeps the results it had (all timed out together, none kept)
                index = span.start + i
                yield _event("result", {"index": index, **translation_result(hyps, self.body)})
        ms = round((time.perf_counter() - start) * 1000, 3)
        yield _event("done", {"model": self.name, "decode_ms": ms})

    async def guarded(self):
        complete = False
        try:
            async for chunk in self.produce():
                yield chunk
            complete = True
        finally:  # the client went away (or all was sent): the decode stops at its next step
            self.gone = True
            if not complete:
                self.state.metrics.dropped.labels(self.name, "disconnected").inc()
