"""Clean interruption of training: SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler
sends before preemption) ask the trainer to stop after the current step and write a
checkpoint; a second SIGINT stops at once (``KeyboardInterrupt``)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_requested: int | None = None  # the signal that asked to stop


def requested() -> int | None:
    """The number of the signal that asked training to stop, or None."""
    return _requested


def request(signum: int = signal.SIGINT) -> None:
    """Ask the running trainer to stop after its current step (what the handler does)."""
    global _requested
    _requested = signum


def _handler(signum: int, frame) -> None:
    if _requested is not None:
        if signum == signal.SIGINT:  # the second Ctrl-C: no more waiting
            raise KeyboardInterrupt
        return
    request(signum)
    name = signal.Signals(signum).name
    print(
        f"transduce: {name}: finishing this step and writing a checkpoint "
        "(Ctrl-C again to quit at once)",
        file=sys.stderr,
        flush=True,
    )


@contextmanager
def graceful() -> Iterator[None]:
    """Within this block SIGINT and SIGTERM set :func:`requested` instead of killing the
    process (only in the main thread, where Python delivers signals)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested = None
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _requested = None
