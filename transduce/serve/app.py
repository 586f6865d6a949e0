"""The HTTP API (FastAPI): translate and forecast through per-model micro-batchers, describe
the models, report health and metrics, and serve the page at ``/``.

``create_app(models, ServeLimits())`` builds the app over loaded models;
``create_app(loader=...)`` loads them after start-up (``/health/ready`` says when).
The routes live in :mod:`transduce.serve.routes`, one ``APIRouter`` per family, and reach
the shared state through dependencies. Every bad request gets a 4xx JSON body
``{"field": ..., "error": ...}`` naming the offending field; nothing a client sends can stop
the server from answering the next request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

import transduce
from transduce.serve import schemas as s
from transduce.serve.backend import ServedModel
from transduce.serve.docs import add_docs
from transduce.serve.errors import SafeJSONResponse, add_error_handlers
from transduce.serve.fastpath import FastTranslate
from transduce.serve.limits import ServeLimits
from transduce.serve.middleware import Gate, RequestContext
from transduce.serve.routes import ROUTERS
from transduce.serve.state import ServeState

PAGE = Path(__file__).parent / "static" / "index.html"


class ServeAPI(FastAPI):
    """FastAPI with the server's own pure ASGI layers in front of the framework's: the
    request context (ids, metrics, access log), the body gate and the translate fast path
    run before FastAPI's error, telemetry and body-limit middleware, which only the
    requests the fast path passes on go through. FastAPI's layers were ~0.05 ms of a
    request (a minimal FastAPI app answered a health check in 0.092 ms, bare uvicorn in
    0.041; docs/guide/deploying.md), the largest cost of a one-sentence translation
    outside its decode after the translation's own work. A failure in these layers gets
    the routes' JSON 500 from the request context (:func:`errors.failure_response`), as
    FastAPI's error middleware gave it before."""

    front = None  # the layers' chain, ending in the framework (set by create_app)

    async def __call__(self, scope, receive, send) -> None:
        if self.front is None or scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        scope["app"] = self  # as Starlette sets it: Request.app, url_for
        await self.front(scope, receive, send)

    async def framework(self, scope, receive, send) -> None:
        """FastAPI itself: its middleware stack and router."""
        await super().__call__(scope, receive, send)


def create_app(
    models: dict[str, ServedModel] | None = None,
    limits: ServeLimits | None = None,
    *,
    loader: Callable[[], dict[str, ServedModel]] | None = None,
    names: list[str] | None = None,
    json_logs: bool = False,
    load_first: bool = False,
) -> FastAPI:
    """The API over ``models`` (name -> loaded model), or over what ``loader`` returns,
    loaded in a thread once the server runs (``load_first``: before it accepts
    connections, as a worker of several does, so that only loaded workers take requests
    on the shared socket); one micro-batcher per model."""
    if (models is None) == (loader is None):
        raise ValueError("give models or a loader")
    state = ServeState(limits or ServeLimits(), names or list(models or {}))
    if models is not None:
        state.install(models)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = None
        if loader is not None and load_first:
            await state.load(loader)
        elif loader is not None:
            loading = asyncio.create_task(state.load(loader))
        yield
        if loading is not None:
            loading.cancel()
        await state.close()

    app = ServeAPI(
        title="transduce",
        version=transduce.__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        default_response_class=SafeJSONResponse,
        responses={422: {"model": s.ErrorResponse}},
    )
    app.state.serve = state
    app.state.models, app.state.batchers = state.models, state.batchers  # for tests and tools
    app.state.limits = state.limits
    gate = Gate(
        FastTranslate(app.framework, state=state),  # innermost: after the gate
        arrivals=state.arrivals,
        max_body=state.limits.max_body_kb * 1024,
        max_inflight=state.limits.max_inflight_kb * 1024,
    )
    app.front = RequestContext(gate, state=state, json_logs=json_logs)  # outermost: sees all
    add_error_handlers(app, state.limits.max_errors)
    for router in ROUTERS:  # first: a request is matched against routes in order
        app.include_router(router)
    add_docs(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html; charset=utf-8")

    return app
