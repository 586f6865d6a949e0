"""SIGTERM for the command-line entry points (``transduce`` and ``python -m
transduce.runtime``): ``kill``, a scheduler or ``docker stop`` raises :class:`Terminated`,
a ``KeyboardInterrupt``, so every clean-up an interrupt runs (temporary outputs, a
half-made run, the run lock) runs too, and the command ends with one line and status 143,
instead of the process vanishing without a word. Training's own handler
(:mod:`transduce.engine.interrupt`) takes over while it trains and hands back after."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM within :func:`terminating`."""


_PID = 0  # the process that installed the handler


def _terminate(signum: int, frame: object) -> None:
    if os.getpid() != _PID:  # a forked child (a pool's worker) inherited it: the pool
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # ends its workers by SIGTERM,
        os.kill(os.getpid(), signal.SIGTERM)  # quietly, as before: no traceback each
        return
    raise Terminated


def _default_in_child() -> None:
    """A forked child (a pool's worker) starts with SIGTERM's default action: a handler
    there ran only between bytecodes, so a worker stuck in a lock (a fork taken while
    another thread held it) ignored the pool's SIGTERM and the pool waited for ever."""
    if signal.getsignal(signal.SIGTERM) is _terminate:
        with suppress(ValueError):  # not the main thread: the pid check in _terminate stays
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_in_child)


@contextmanager
def terminating() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` within this block (main thread only, where
    Python delivers signals); the previous handler is back after it."""
    global _PID
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _PID = os.getpid()
    previous: Callable | int | None = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
