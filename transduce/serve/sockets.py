"""The server's listening sockets.

One process binds the port and serves on it. With ``--workers N``, uvicorn's process
manager hands every worker the same socket, and each worker's event loop accepts all the
connections waiting when it wakes: a burst of keep-alive clients (a load balancer's pool
opening, a load test starting) lands almost whole on one worker (measured: 30 of 32
connections on one of two workers, which then did nearly all the work). Where the system
has ``SO_REUSEPORT`` (Linux, the BSDs), each worker instead listens on a socket of its own
bound to the same address, and the kernel spreads new connections over the listening
sockets by a hash of their addresses; the parent's socket only holds the port and never
listens, and a worker's socket goes with its process, so a dead worker's share of new
connections goes to the live ones.
"""

from __future__ import annotations

import logging
import os
import socket

from transduce.config import ConfigError

log = logging.getLogger("transduce.serve")

REUSE_PORT = hasattr(socket, "SO_REUSEPORT") and os.path.isdir("/proc/self/fd")


def _tcp_socket(family: int) -> socket.socket:
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only for those;
    # without it every small reply waits out the client's delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _bind(sock: socket.socket, host: str, port: int) -> None:
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as err:
        sock.close()
        why = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"cannot listen on {host}:{port}: {why}") from None


def listening_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A bound TCP socket for uvicorn; port 0 picks a free one. ``reuse_port``: bound with
    ``SO_REUSEPORT`` for workers that listen on sockets of their own (:func:`own_listener`),
    after a plain bind has checked that nothing else holds the port (a second server on
    the same port fails as it would without the option, rather than sharing its clients)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: give 0 (any free port) to 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _tcp_socket(family)
    _bind(sock, host, port)
    if not reuse_port:
        return sock
    port = sock.getsockname()[1]
    sock.close()
    sock = _tcp_socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    _bind(sock, host, port)
    return sock


def own_listener(address: tuple) -> bool:
    """In a worker process: put a socket of its own, bound with ``SO_REUSEPORT`` to
    ``address``, in place of the (not yet listening) socket it inherited for that address,
    so that uvicorn listens on it. False, and nothing changed, where the inherited socket
    is not found or the new one cannot bind: the worker then shares the parent's socket."""
    if not REUSE_PORT:
        return False
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            found = socket.socket(fileno=fd)
        except OSError:  # not a socket (or already closed)
            continue
        try:
            inherited = (
                found.type == socket.SOCK_STREAM
                and found.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
                and not found.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                and found.getsockname()[:2] == tuple(address[:2])
            )
            if not inherited:
                continue
            mine = _tcp_socket(found.family)
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            try:
                mine.bind(found.getsockname())
            except OSError as err:
                mine.close()
                log.warning("worker %d shares the parent's socket: %s", os.getpid(), err)
                return False
            os.dup2(mine.fileno(), fd)  # uvicorn's socket object now holds this worker's own
            mine.close()
            return True
        except OSError:
            continue
        finally:
            found.detach()  # the descriptor stays open: it belongs to whoever opened it
    return False
