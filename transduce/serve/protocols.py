"""uvicorn's HTTP protocols with what the server adds: a deadline on reading each request
(slowloris), and with httptools the same 16 KiB cap on a request's line and headers that
h11 enforces itself.

httptools (llhttp, in C; the ``serve`` extra brings it) parses a request several times
faster than the pure-Python h11, and on a loaded server the HTTP path, not the decode,
bounds one worker's throughput; h11 is the fallback where httptools is not installed.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools not installed: h11 only
    HttpToolsProtocol = None

MAX_HEAD_BYTES = 16 * 1024  # request line and headers (h11_max_incomplete_event_size)
# requests a connection may send ahead of their replies (httptools parses a whole read of
# them at once): 8 clients pipelining requests they never read had grown a server by 1 GB
MAX_PIPELINED = 1024


class _QuietTransport:
    """A connection's transport as uvicorn uses it, except that a write after it closed (a
    client that reset while replies were due) does nothing, as asyncio's transports do:
    uvloop's raised RuntimeError, logged as an "Exception in ASGI application"."""

    def __init__(self, transport) -> None:
        self._transport = transport

    def write(self, data) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class _ReadDeadline:
    """A deadline on reading each request, for either of uvicorn's HTTP protocols: a client
    that trickles its headers or body (slowloris) or opens a connection and sends nothing is
    disconnected after ``read_timeout_s``; uvicorn's keep-alive timeout covers idle time
    between requests. The deadline runs from a request's first byte until it is read
    whole, so a busy keep-alive client is never cut off between two requests."""

    read_timeout = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(_QuietTransport(transport))  # type: ignore[misc]
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # a new request starts on a kept-alive connection
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if not cycle.more_body:
                # read whole: the deadline was for reading it (a deadline left running would
                # fire later between two requests of a busy keep-alive client and cut it off)
                self._disarm()
            elif self._deadline is None:  # a pipelined request's body is still coming
                self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self) -> None:
        self._disarm()
        timeout = getattr(self.config, "transduce_read_timeout", self.read_timeout)
        self._deadline = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        reading = self.cycle is None or self.cycle.response_complete or self.cycle.more_body
        if reading and not self.transport.is_closing():
            self.transport.close()


class ReadTimeoutH11(_ReadDeadline, H11Protocol):
    """Pure-Python h11 with the read deadline (when httptools is not installed)."""


if HttpToolsProtocol is not None:

    class ReadTimeoutHttpTools(_ReadDeadline, HttpToolsProtocol):
        """httptools with the read deadline, a 16 KiB head and at most ``MAX_PIPELINED``
        requests waiting for their replies: past either bound the request gets a 400 and the
        connection closes (as with h11), rather than the server buffering without bound
        (llhttp sets no limit). An error raised in a parser callback reaches uvicorn as
        ``HttpParserError``: its 400."""

        _head_bytes = 0

        def on_message_begin(self) -> None:
            self._head_bytes = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if len(self.pipeline) > MAX_PIPELINED:  # a 400, and the connection closes
                raise ValueError(f"over {MAX_PIPELINED} requests sent ahead of their replies")

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > MAX_HEAD_BYTES:
                raise ValueError("request line and headers over 16 KiB")

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)  # ": " and CRLF
            super().on_header(name, value)


def http_protocol() -> type:
    """The protocol class uvicorn runs: httptools when installed, else h11."""
    return ReadTimeoutH11 if HttpToolsProtocol is None else ReadTimeoutHttpTools
