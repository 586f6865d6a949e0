"""A small HTTP server on 127.0.0.1 that stands in for the internet in download tests.

It serves bytes at paths (``/raw.githubusercontent.com/owner/repo/commit/file``, as the
official URLs with ``https://`` replaced by the server's base), and can answer a path with
an HTTP error or close the connection half-way through the body.
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server
        path = unquote(self.path)
        state.hits[path] += 1
        if path in state.status:
            self.send_error(state.status[path])
            return
        body = state.files.get(path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if state.cut.get(path, 0) > 0:  # the connection drops half-way through the body
            state.cut[path] -= 1
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.cut: dict[str, int] = {}
        self.hits: Counter[str] = Counter()


class LoopbackServer:
    """``with LoopbackServer() as srv: srv.add(url, data)``; ``srv.base`` is the mirror base."""

    def __init__(self) -> None:
        self._server = _Server()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hits(self) -> Counter[str]:
        return self._server.hits

    @staticmethod
    def path_of(url: str) -> str:
        """The path an official ``https://host/path`` URL has on this server."""
        return "/" + url.split("://", 1)[1]

    def add(self, url: str, data: bytes) -> None:
        self._server.files[self.path_of(url)] = data

    def fail(self, url: str, status: int) -> None:
        self._server.status[self.path_of(url)] = status

    def cut(self, url: str, times: int = 1) -> None:
        """Drop the connection half-way through the next ``times`` answers for ``url``."""
        self._server.cut[self.path_of(url)] = times

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def closed_port() -> int:
    """A loopback port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
