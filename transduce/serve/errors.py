"""Error replies of the HTTP API: every client mistake is a 4xx JSON body
``{"field": ..., "error": ...}`` naming the offending field, with at most ``max_errors``
problems listed, and no reply can fail to encode (a 500 for the client's own bytes)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("transduce.serve")


class ApiError(Exception):
    """A request the server refuses: ``status`` (4xx, or 503), the field, one line why."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: text holding lone surrogates (from ``\\udXXX`` escapes a
    client sent) is written with ASCII escapes instead of failing mid-reply."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


def error_response(status: int, field: str, message: str, errors: list | None = None, headers=None):
    body = {"field": field, "error": message, **({"errors": errors} if errors else {})}
    return SafeJSONResponse(body, status_code=status, headers=headers)


def field_name(loc: tuple | list) -> str:
    """``("body", "texts", 2)`` -> ``texts[2]``; the body itself is ``body``."""
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def add_error_handlers(app: FastAPI, max_errors: int) -> None:
    """4xx bodies for every client mistake; a 500 only for the server's own failure."""

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if request.method == "POST" and kind != "application/json" and not kind.endswith("+json"):
            # FastAPI reads only JSON bodies: another type read as no body at all, and the
            # reply spoke of a "valid dictionary"
            said = f"Content-Type {kind[:60]!r}" if kind else "no Content-Type"
            return error_response(415, "body", f"{said}: send application/json")
        errors, total = [], 0
        for e in exc.errors():
            kind = e.get("type", "")
            if kind == "json_invalid" or "decode" in str(e.get("msg", "")).lower():
                return error_response(400, "body", "the body is not valid JSON in UTF-8")
            total += 1
            if len(errors) < max_errors:  # the reply stays small however many there are
                errors.append({"field": field_name(e.get("loc", ())), "error": str(e.get("msg"))})
        if not errors:
            return error_response(400, "body", "the request could not be read")
        message = errors[0]["error"]
        if total > len(errors):
            message += f" (and {total - 1} more problems; the first {len(errors)} are listed)"
        return error_response(422, errors[0]["field"], message, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = "path" if exc.status_code in (404, 405) else "body"
        message = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in message:  # FastAPI's wording
            message = "the body could not be read: send JSON in UTF-8"
            if request.headers.get("content-encoding", "identity").lower() != "identity":
                return error_response(415, "body", "Content-Encoding: send it uncompressed")
        return error_response(exc.status_code, field, message, headers=exc.headers)  # Allow

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return failure_response(request.scope, exc)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.field, exc.message)


def failure_response(scope, exc: Exception) -> JSONResponse:
    """The 500 for the server's own failure on a request, logged with the request's id and
    the traceback (call it while handling ``exc``): the FastAPI routes' exception handler
    and the server's layers in front of FastAPI (the translate fast path) answer alike."""
    log.exception("request %s failed", scope.get("transduce.request_id", "-"))
    return error_response(500, "body", f"the model failed on this request: {type(exc).__name__}")
