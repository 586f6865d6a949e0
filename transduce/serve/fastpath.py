"""``POST /v1/translate`` without FastAPI's routing and dependency machinery, for the
requests that are valid as sent: a pure ASGI middleware parses and validates the body with
the route's own model (:class:`transduce.serve.schemas.TranslateRequest`) and answers with
the route's own code (:func:`transduce.serve.routes.translate.answer`).

Anything else -- a body that does not parse or validate, a streamed request, another
content type, a server still loading -- is replayed to the FastAPI route, which answers as
it always did (the same 4xx wording), so the fast path changes no reply, only its cost:
FastAPI's router walk, dependency solving and request handler were about half of a
one-sentence request's time in the app (measured with py-spy, issue 30).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from starlette.requests import Request

from transduce.serve.errors import ApiError, error_response
from transduce.serve.middleware import replay
from transduce.serve.routes.common import check_shape
from transduce.serve.routes.translate import answer
from transduce.serve.schemas import TranslateRequest
from transduce.serve.state import ServeState

PATH = "/v1/translate"
ROUTE = SimpleNamespace(path=PATH)  # what the metrics and access log read from scope["route"]


def _json_body(scope) -> bool:
    """Whether the request says its body is plain ``application/json`` (anything else,
    e.g. with parameters, goes the FastAPI way)."""
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value == b"application/json"
    return False


class FastTranslate:
    """The fast path (see the module's docstring); sits inside the request gate and the
    request context, so limits, request ids, metrics and access logs apply as before."""

    def __init__(self, app, state: ServeState) -> None:
        self.app, self.state = app, state
        self.answered = 0  # requests the fast path answered itself

    async def __call__(self, scope, receive, send) -> None:
        fast = (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
            and self.state.ready
            and _json_body(scope)
        )
        if not fast:
            return await self.app(scope, receive, send)
        messages, chunks = [], []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return await self.app(scope, replay(messages, receive), send)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        again = replay(messages, receive)
        try:
            raw = json.loads(b"".join(chunks))
            check_shape(raw, self.state.limits)
            body = TranslateRequest.model_validate(raw)
        except Exception:  # any refusal: the route says it, in its own words
            return await self.app(scope, again, send)
        if body.stream:
            return await self.app(scope, again, send)
        scope["route"] = ROUTE
        self.answered += 1
        try:
            response = await answer(body, Request(scope, again), self.state)
        except ApiError as err:
            response = error_response(err.status, err.field, err.message)
        await response(scope, again, send)
