"""The HTTP API (FastAPI): translate and forecast through per-model micro-batchers, describe
the models, and serve the page at ``/``.

``create_app(models, ServeLimits())`` builds the app; ``transduce serve`` runs it with
uvicorn. Every bad request gets a 4xx JSON body ``{"field": ..., "error": ...}`` naming the
offending field; nothing a client sends can stop the server from answering the next request.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from transduce.decoding import Translation
from transduce.serve import schemas as s
from transduce.serve.backend import ServedModel, UnsupportedOption
from transduce.serve.batcher import Arrivals, MicroBatcher
from transduce.serve.limits import ServeLimits

log = logging.getLogger("transduce.serve")
PAGE = Path(__file__).parent / "static" / "index.html"
API_PREFIX = "/v1/"


class ApiError(Exception):
    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def _error(status: int, field: str, message: str, errors: list | None = None) -> JSONResponse:
    body = {"field": field, "error": message, **({"errors": errors} if errors else {})}
    return JSONResponse(body, status_code=status)


def _field_name(loc: tuple | list) -> str:
    """``("body", "texts", 2)`` -> ``texts[2]``; the body itself is ``body``."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


class _Gate:
    """Pure ASGI middleware: counts API requests being read (the batchers' ``Arrivals``) and
    refuses bodies over the size limit before they are read whole."""

    def __init__(self, app, arrivals: Arrivals, max_body: int) -> None:
        self.app, self.arrivals, self.max_body = app, arrivals, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is None and scope["method"] in ("GET", "HEAD"):
            length = b"0"
        if length is None or not length.isdigit() or int(length) > self.max_body:
            # h11 holds the body to its declared length; chunked bodies need one declared
            response = _error(413, "body", f"request body over {self.max_body} bytes (or no "
                              "Content-Length)")  # fmt: skip
            return await response(scope, receive, send)
        token = scope["transduce.arrival"] = _Arrival(self.arrivals)
        try:
            await self.app(scope, receive, send)
        finally:
            token.leave()


class _Arrival:
    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals, self.left = arrivals, False
        arrivals.enter()

    def leave(self) -> None:
        if not self.left:
            self.left = True
            self.arrivals.leave()


def _arrived(request: Request) -> None:
    """The request is parsed and about to queue: the batcher need not wait for it."""
    token = request.scope.get("transduce.arrival")
    if token is not None:
        token.leave()


def create_app(models: dict[str, ServedModel], limits: ServeLimits | None = None) -> FastAPI:
    """The API over ``models`` (name -> loaded model), one micro-batcher each."""
    limits = limits or ServeLimits()
    executor = ThreadPoolExecutor(1, thread_name_prefix="transduce-decode")  # one decode at once
    arrivals = Arrivals()
    batchers = {
        name: MicroBatcher(m.decode, executor, limits.max_batch_size, limits.max_wait_ms, arrivals)
        for name, m in models.items()
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for b in batchers.values():
            await b.close()
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="transduce", version="1", lifespan=lifespan,
                  responses={422: {"model": s.ErrorResponse}})  # fmt: skip
    app.state.models, app.state.batchers, app.state.limits = models, batchers, limits
    app.add_middleware(_Gate, arrivals=arrivals, max_body=limits.max_body_kb * 1024)
    _add_error_handlers(app)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(PAGE, media_type="text/html; charset=utf-8")

    @app.get("/health", response_model=s.HealthResponse)
    def health() -> s.HealthResponse:
        stats = {n: s.BatchStats(calls=b.calls, items=b.items) for n, b in batchers.items()}
        return s.HealthResponse(status="ok", models=list(models), batches=stats)

    @app.get("/v1/models", response_model=s.ModelsResponse)
    def list_models() -> s.ModelsResponse:
        return s.ModelsResponse(models=[s.ModelInfo(**m.describe()) for m in models.values()])

    errors = {400: {"model": s.ErrorResponse}, 404: {"model": s.ErrorResponse}}

    @app.post("/v1/translate", response_model=s.TranslateResponse, responses=errors)
    async def translate(body: s.TranslateRequest, request: Request) -> s.TranslateResponse:
        _arrived(request)
        name, model = _pick(models, body.model, "text")
        texts = _check_texts(body.texts, model.fields, limits)
        if len(texts) * body.nbest > limits.max_texts:
            raise ApiError(422, "nbest", f"texts x nbest is over {limits.max_texts}")
        if body.return_attention:
            _check_attention_size(texts, body, model.max_len)
        options = body.decode_options()  # its cross-option rules ran in validation (422)
        try:
            model.check(options)  # before queueing: a refused option never joins a batch
        except UnsupportedOption as err:
            raise ApiError(422, err.field, err.message) from None
        start = time.perf_counter()
        mergeable = not (body.sample and body.seed is not None)
        hyps = await batchers[name].submit(texts, options, mergeable)
        ms = (time.perf_counter() - start) * 1000
        results = [_result(h, body) for h in hyps]
        return s.TranslateResponse(model=name, results=results, decode_ms=round(ms, 3))

    @app.post("/v1/forecast", response_model=s.ForecastResponse, responses=errors)
    async def forecast(body: s.ForecastRequest, request: Request) -> s.ForecastResponse:
        _arrived(request)
        name, _ = _pick(models, body.model, "series")
        _check_series(body.series, limits)
        histories = [np.asarray(x.values, dtype=np.float64) for x in body.series]
        start = time.perf_counter()
        preds = await batchers[name].submit(histories, None)
        ms = (time.perf_counter() - start) * 1000
        out = []
        for i, (series, pred) in enumerate(zip(body.series, preds, strict=True)):
            stamps = None
            if series.timestamps is not None:
                stamps = continue_timestamps(series.timestamps, len(pred), f"series[{i}]")
            out.append(s.SeriesForecast(id=series.id, values=pred.tolist(), timestamps=stamps))
        ms = round(ms, 3)
        return s.ForecastResponse(model=name, horizon=len(preds[0]), forecasts=out, decode_ms=ms)

    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            kind = e.get("type", "")
            if kind == "json_invalid" or "decode" in str(e.get("msg", "")).lower():
                return _error(400, "body", "the body is not valid JSON in UTF-8")
            field = _field_name(e.get("loc", ()))
            errors.append({"field": field, "error": str(e.get("msg", "invalid"))})
        if not errors:
            return _error(400, "body", "the request could not be read")
        return _error(422, errors[0]["field"], errors[0]["error"], jsonable_encoder(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = "path" if exc.status_code in (404, 405) else "body"
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # FastAPI's wording
            message = "the body could not be read: send JSON in UTF-8"
        return _error(exc.status_code, field, message)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("decode failed")
        return _error(500, "body", f"the model failed on this request: {type(exc).__name__}")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.field, exc.message)


def _pick(models: dict[str, ServedModel], name: str | None, kind: str):
    if name is None:
        name = next((n for n, m in models.items() if m.kind == kind), next(iter(models)))
    if name not in models:
        raise ApiError(404, "model", f"no model {name!r}; serving: {', '.join(models)}")
    model = models[name]
    if model.kind != kind:
        route = "/v1/forecast" if model.kind == "series" else "/v1/translate"
        raise ApiError(422, "model", f"{name!r} is a {model.kind} model: use {route}")
    return name, model


def _check_texts(texts: list[Any], fields: tuple[str, ...], limits: ServeLimits) -> list[str]:
    """The inputs as the translator reads them (several fields: tab-joined, in order)."""
    if len(texts) > limits.max_texts:
        raise ApiError(422, "texts", f"{len(texts)} texts: at most {limits.max_texts}")
    out = []
    for i, item in enumerate(texts):
        where = f"texts[{i}]"
        if len(fields) == 1:
            if not isinstance(item, str):
                raise ApiError(422, where, "must be a string")
            text = item
        else:
            text = _joined_fields(item, fields, where)
        if len(text) > limits.max_chars:
            raise ApiError(422, where, f"{len(text)} characters: at most {limits.max_chars}")
        out.append(text)
    return out


def _joined_fields(item: Any, fields: tuple[str, ...], where: str) -> str:
    if not isinstance(item, dict):
        raise ApiError(422, where, f"this model reads fields {', '.join(fields)}: give an object")
    extra = sorted(set(item) - set(fields))
    if extra:
        raise ApiError(422, f"{where}.{extra[0]}", f"unknown field; expected {', '.join(fields)}")
    for f in fields:
        if f not in item:
            raise ApiError(422, f"{where}.{f}", "missing field")
        if not isinstance(item[f], str):
            raise ApiError(422, f"{where}.{f}", "must be a string")
    # as the training records were packed: each field on one line, tab-joined
    return "\t".join(" ".join(item[f].split()) for f in fields)


def _check_attention_size(texts: list[str], body: s.TranslateRequest, default_len: int) -> None:
    """Bound the attention matrices a reply may carry (a token is at most one character
    here, plus one for the end)."""
    rows = body.max_len or default_len
    cells = body.nbest * rows * sum(len(t) + 1 for t in texts)
    if cells > s.MAX_ATTENTION_CELLS:
        raise ApiError(422, "return_attention", f"the attention matrices could reach {cells:,} "
                       f"weights (at most {s.MAX_ATTENTION_CELLS:,}): send fewer or shorter "
                       "texts, or lower nbest or max_len")  # fmt: skip


def _check_series(series: list[s.SeriesInput], limits: ServeLimits) -> None:
    if len(series) > limits.max_texts:
        raise ApiError(422, "series", f"{len(series)} series: at most {limits.max_texts}")
    for i, x in enumerate(series):
        if len(x.values) > limits.max_values:
            raise ApiError(422, f"series[{i}].values", f"at most {limits.max_values} values")
        if x.timestamps is not None and len(x.timestamps) != len(x.values):
            raise ApiError(422, f"series[{i}].timestamps", "one timestamp per value needed")


def _result(hyps: list[Translation], body: s.TranslateRequest) -> s.TranslationResult:
    def one(h: Translation) -> s.Hypothesis:
        att = None
        if body.return_attention and h.attention is not None:
            att = np.round(h.attention.astype(np.float64), 4).tolist()
        tokens = h.out_tokens if body.return_tokens or body.return_attention else None
        return s.Hypothesis(text=h.text, score=h.score, logprob=h.logprob, tokens=tokens,
                            attention=att)  # fmt: skip

    src = hyps[0].src_tokens if body.return_tokens or body.return_attention else None
    return s.TranslationResult(src_tokens=src, hypotheses=[one(h) for h in hyps])


def continue_timestamps(stamps: list[str | float], horizon: int, where: str) -> list[str | float]:
    """The ``horizon`` timestamps after ``stamps``, at their last spacing (ISO 8601 or numbers)."""
    field = f"{where}.timestamps"
    if len(stamps) < 2:
        raise ApiError(422, field, "need at least two timestamps to continue them")
    if all(isinstance(t, (int, float)) for t in stamps):
        step = stamps[-1] - stamps[-2]
        return [stamps[-1] + step * (k + 1) for k in range(horizon)]
    try:
        times = [datetime.fromisoformat(str(t)) for t in stamps[-2:]]
    except ValueError:
        raise ApiError(422, field, "timestamps must be ISO 8601 strings or numbers") from None
    step = times[1] - times[0]
    if step.total_seconds() <= 0:
        raise ApiError(422, field, "timestamps must increase")
    return [(times[1] + step * (k + 1)).isoformat() for k in range(horizon)]
