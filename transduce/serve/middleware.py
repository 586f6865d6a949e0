"""Pure ASGI middleware of the server: the request gate (body size, arrivals for the
batchers) and the request context (``X-Request-ID``, access log line, metrics)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import time
from datetime import UTC, datetime

from starlette.datastructures import MutableHeaders

from transduce.serve.batcher import Arrivals
from transduce.serve.errors import error_response, failure_response
from transduce.serve.state import ServeState

API_PREFIX = "/v1/"
access_log = logging.getLogger("transduce.serve.access")
log = logging.getLogger("transduce.serve")
# a client's request id is echoed into headers and logs: printable, short, no separators
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,128}")


class Gate:
    """Counts API requests being read (the batchers' ``Arrivals``), refuses bodies over
    the size limit before they are read whole, and sheds load past ``max_inflight`` bytes
    of bodies being handled at once: a parsed JSON body weighs about 15 times its bytes
    (16 concurrent 4 MB forecast bodies had taken a worker from 0.3 to 1.15 GB), so beyond
    the budget a request gets a 503 with ``Retry-After`` instead of memory: at once when
    its declared length is over what is left, else once its body is whole. The gate reads
    each body itself, counting bytes as they arrive (a declared length reserves nothing),
    and hands it on only whole and within the budget. A lone body is always admitted."""

    def __init__(self, app, arrivals: Arrivals, max_body: int, max_inflight: int) -> None:
        self.app, self.arrivals, self.max_body = app, arrivals, max_body
        self.max_inflight = max_inflight
        self.inflight = 0  # body bytes received by the API requests being handled

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is None and scope["method"] != "POST":  # no body to bound: the app
            length = b"0"  # answers (405 for a method the route does not take)
        if length is None:  # chunked: bodies are bounded by their declared length
            response = error_response(411, "body", "a request body needs a Content-Length")
            return await response(scope, receive, send)
        if not length.isdigit() or int(length) > self.max_body:
            response = error_response(413, "body", f"request body over {self.max_body} bytes")
            return await response(scope, receive, send)
        if self.inflight and self.inflight + int(length) > self.max_inflight:
            return await self._shed(scope, receive, send, self.inflight)  # before reading
        token = scope["transduce.arrival"] = Arrival(self.arrivals)
        messages, received = [], 0
        try:
            # the body read here, counted as it arrives: a declared length reserves nothing
            # (four connections that declared 4 MB and sent a byte had every request
            # refused), and a body is parsed only once whole and within the budget
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":
                    break  # the client left: the app sees it
                received += len(message.get("body", b""))
                self.inflight += len(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            if self.inflight > self.max_inflight and self.inflight > received:
                return await self._shed(scope, receive, send, self.inflight - received)
            await self.app(scope, replay(messages, receive), send)
        finally:
            self.inflight -= received
            token.leave()

    async def _shed(self, scope, receive, send, others: int) -> None:
        response = error_response(
            503,
            "body",
            f"the server is handling {others // 1024} KiB of request bodies "
            f"(--max-inflight-kb {self.max_inflight // 1024}): retry shortly",
        )
        response.headers["Retry-After"] = "1"
        await response(scope, receive, send)


def replay(messages: list[dict], receive):
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replayed() -> dict:
        return pending.pop(0) if pending else await receive()

    return replayed


class ClientStalled(Exception):
    """A client that stopped reading its streamed reply past the request's deadline."""


class Arrival:
    """One request being read; ``leave`` once it reached a batcher (or ended)."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals, self.left = arrivals, False
        arrivals.enter()

    def leave(self) -> None:
        if not self.left:
            self.left = True
            self.arrivals.leave()


# fresh ids: this process's random prefix and a counter, 32 hex digits as a uuid4's; unique
# across workers and restarts without a random draw per request (a getrandom() system call
# was ~2% of a one-sentence request's time)
_ids = {"pid": -1, "prefix": "", "count": itertools.count(1)}


def fresh_id() -> str:
    """A new request id (a forked process draws its own prefix)."""
    if _ids["pid"] != os.getpid():
        _ids.update(pid=os.getpid(), prefix=os.urandom(8).hex(), count=itertools.count(1))
    return f"{_ids['prefix']}{next(_ids['count']):016x}"


def request_id(scope) -> str:
    """The client's ``X-Request-ID`` if it is a sane token, else a fresh one."""
    for key, value in scope["headers"]:
        if key == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return fresh_id()


class RequestContext:
    """Gives every HTTP request an id (echoed as ``X-Request-ID``), counts it in the metrics
    by route template and status, and writes one access-log line (text or JSON)."""

    def __init__(self, app, state: ServeState, json_logs: bool = False) -> None:
        self.app, self.state, self.json_logs = app, state, json_logs

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = scope["transduce.request_id"] = request_id(scope)
        start, status = time.perf_counter(), [500]

        started = [False]

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
                MutableHeaders(scope=message).append("x-request-id", rid)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientStalled as stalled:  # its connection is closed (uvicorn says so)
            log.warning("request %s: %s", rid, stalled)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running once --graceful-timeout-s has passed
            # after SIGTERM: the client gets a 503 that says so, not a plain-text 500
            if started[0]:
                return  # half a reply: uvicorn closes the connection (no traceback)
            response = error_response(
                503, "body", "the server stopped before answering (shutting down: retry)"
            )
            await response(scope, receive, send_with_id)
        except Exception as exc:  # the fast path's own failure (FastAPI's routes have theirs)
            if started[0]:
                raise
            await failure_response(scope, exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or _unrouted(scope, status[0])
            self.state.metrics.request(route, scope["method"], status[0], elapsed)
            self._log(scope, rid, route, status[0], elapsed)

    def _log(self, scope, rid: str, route: str, status: int, elapsed: float) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "request_id": rid,
            "method": scope["method"],
            "route": route,
            "path": scope["path"][:200],
            "status": status,
            "latency_ms": round(elapsed * 1000, 3),
            "client": f"{client[0]}:{client[1]}" if client else None,
        }
        if self.json_logs:
            access_log.info(json.dumps(line, ensure_ascii=True))
        else:
            path = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in line["path"])
            access_log.info(  # a decoded %0a in the path had written a line of its own
                "%s %s %s %d %.1f ms", rid, line["method"], path, status, line["latency_ms"]
            )


def _unrouted(scope, status: int) -> str:
    """The metrics label of a request no API route took: the first part of its path where
    it was answered (/openapi.json, /docs, /docs-assets: a few, as the app has them), else
    "unmatched" (any path a client makes up would be a label of its own)."""
    if status >= 400:
        return "unmatched"
    return "/" + scope["path"].lstrip("/").split("/", 1)[0]
