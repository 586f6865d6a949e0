"""Dynamic micro-batching: concurrent requests with the same decoding options become one
batched decode on a worker thread, while the event loop keeps accepting requests.

Requests wait in groups keyed by their options. The worker takes the group whose turn it is
and flushes it when it holds ``max_batch_size`` items or ``max_wait_ms`` have passed since its
oldest request arrived -- and without waiting at all when nothing suggests company is coming
(no request is being read and as many requests wait as the previous batch served), so one
client on an idle server pays no batching delay, and N clients in a closed loop are batched
as soon as all N are back. A batch takes one item from each waiting request in
turn, and groups take turns, so a large request is split into batches and holds the others
back by one batch at most. Each request gets exactly its own results, in its order.
A batch is also bounded in work (``max_cost``, e.g. beam x output length per item), so a
costly request is split into short batches; a request whose caller stopped waiting (its
client disconnected, or its time ran out) is dropped before its next batch.

A batch predicted to take at most ``inline_seconds`` (its work times the seconds per unit
of work the model's recent batches took) is decoded on the event loop's thread: handing it
to the decode thread and back costs two thread switches, and the two threads take turns on
Python's global lock anyway, so a server process with one decode thread serves more that
way (measured: 8-10 % more sentences/s at 32 clients, one or two workers, CTranslate2 and
PyTorch alike); the loop is held for that bounded time only.

This is the scheme of serving systems such as Clipper (Crankshaw et al., 2017, "Clipper: A
Low-Latency Online Prediction Serving System", NSDI) with a fixed wait bound instead of an
adaptive one.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

_running = threading.local()  # the stop test of the batch the current thread decodes


class DecodeCancelled(Exception):
    """Raised inside a decode whose every request was given up (see :func:`check_cancelled`)."""


def check_cancelled() -> None:
    """For engines to call between decoding steps: raises :class:`DecodeCancelled` once
    every request of the batch this thread decodes was given up (client gone, timed out),
    so even one long beam search stops within a step rather than running to max_len."""
    stop = getattr(_running, "stop", None)
    if stop is not None and stop():
        raise DecodeCancelled


def _decode_batch(decode: Callable, items: list[Any], options: Any, stop: Callable[[], bool]):
    _running.stop = stop
    try:
        return decode(items, options)
    finally:
        _running.stop = None


class Arrivals:
    """How many requests the server is reading that have not reached a batcher yet: the
    batcher waits for those, not for requests that may never come."""

    def __init__(self) -> None:
        self.count = 0
        self._listeners: list[asyncio.Event] = []

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        for event in self._listeners:
            event.set()

    def listen(self, event: asyncio.Event) -> None:
        self._listeners.append(event)

    def forget(self, event: asyncio.Event) -> None:
        if event in self._listeners:
            self._listeners.remove(event)


@dataclass(eq=False)
class _Request:
    items: list[Any]
    future: asyncio.Future
    arrived: float
    results: list[Any] = field(default_factory=list)
    handed: int = 0  # items put into a batch so far
    done: int = 0  # items with a result


class MicroBatcher:
    """``await batcher.submit(items, options)`` -> ``decode(items, options)``'s results, with
    items of concurrent submissions merged into batches of at most ``max_batch_size``.

    ``calls`` counts the batched decode calls made and ``items`` the items they decoded.
    """

    def __init__(
        self,
        decode: Callable[[list[Any], Any], list[Any]],
        executor: Executor,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        arrivals: Arrivals | None = None,
        cost: Callable[[Any, Any], int] | None = None,
        max_cost: int | None = None,
        observe: Callable[[int, float], None] | None = None,
        inline_cost: int = 0,
        inline_seconds: float = 0.0,
        inline_options: Callable[[Any], bool] | None = None,
        queued: Callable[[], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self.decode, self.executor = decode, executor
        self.max_batch_size, self.max_wait = max_batch_size, max_wait_ms / 1000
        self.arrivals = arrivals
        self.cost, self.max_cost = cost, max_cost  # cost(item, options): one item's work
        self.observe = observe  # called with (items, seconds) after each batched decode
        self.queued = queued  # called after a request joins the queue
        # a batch of one item costing at most this decodes on the event loop's thread: a
        # lone short request skips two thread hand-offs (to the decode thread and back),
        # the part of its latency offline decoding does not pay; the loop is held for that
        # one short decode only
        self.inline_cost = inline_cost
        self.inline_seconds = inline_seconds
        # options whose batches may decode there at all: the costs above count on outputs
        # ending as the recent batches' did, and a request may raise the worst case (an
        # output that never ends runs to its max_len) past what the loop can be held for
        self.inline_options = inline_options
        self._rate: float | None = None  # seconds per unit of work, recent batches' average
        self.calls = self.items = self.dropped = 0
        self._groups: OrderedDict[Hashable, deque[_Request]] = OrderedDict()
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._last_requests = 1  # requests served by the previous batch

    async def submit(self, items: list[Any], options: Any, mergeable: bool = True) -> list[Any]:
        """Decode ``items`` with ``options``; ``mergeable=False`` keeps them out of other
        requests' batches (seeded sampling, whose draws depend on the batch)."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        self._start(loop)
        key = (options, None) if mergeable else (options, next(self._ids))
        request = _Request(list(items), loop.create_future(), loop.time(), [None] * len(items))
        self._groups.setdefault(key, deque()).append(request)
        self._wake.set()
        if self.queued is not None:
            self.queued()
        return await request.future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the worker in the running loop (again if the loop changed, as in tests)."""
        if self._loop is loop and self._task is not None and not self._task.done():
            return
        if self.arrivals is not None:
            self.arrivals.forget(self._wake)
        self._loop, self._wake = loop, asyncio.Event()
        if self.arrivals is not None:
            self.arrivals.listen(self._wake)
        self._task = loop.create_task(self._run(), name="transduce-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            while not self._groups:
                self._wake.clear()
                await self._wake.wait()
            key = next(iter(self._groups))
            await self._gather(key)
            batch = self._take(key)
            if batch:
                await self._decode(batch, key[0])

    def _pending(self, key: Hashable) -> int:
        return sum(len(r.items) - r.handed for r in self._groups.get(key, ()))

    def depth(self) -> int:
        """Items waiting for a batch (requests whose caller gave up not counted)."""
        return sum(
            len(r.items) - r.handed for q in self._groups.values() for r in q if not r.future.done()
        )

    def _fits(self, batch: list[tuple[_Request, int]], spent: int, item: Any, options: Any):
        """The batch's work with ``item`` added, or None if it would pass ``max_cost``
        (the first item always fits)."""
        if self.cost is None or self.max_cost is None:
            return spent
        spent += self.cost(item, options)
        return spent if spent <= self.max_cost or not batch else None

    def _company_coming(self, key: Hashable) -> bool:
        """Whether more requests are likely to join: some are being read, or fewer are
        waiting than the previous batch served (under a steady load of N clients, each
        sends its next request once answered: the batch is complete when N are back,
        with no need to wait out ``max_wait``)."""
        if self.arrivals is None or self.arrivals.count > 0:
            return True
        return len(self._groups.get(key, ())) < self._last_requests

    async def _gather(self, key: Hashable) -> None:
        """Wait until the group is full, its oldest request waited ``max_wait``, or no
        further request is on its way."""
        loop = asyncio.get_running_loop()
        deadline = self._groups[key][0].arrived + self.max_wait
        while self._pending(key) < self.max_batch_size and self._company_coming(key):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return

    def _take(self, key: Hashable) -> list[tuple[_Request, int]]:
        """Up to ``max_batch_size`` (request, item index) pairs, one per request in turn."""
        queue, batch, spent, full = self._groups[key], [], 0, False
        while queue and not full:
            for request in list(queue):
                if len(batch) == self.max_batch_size:
                    full = True
                    break
                if request.future.done():  # cancelled: the client went away, or timed out
                    queue.remove(request)
                    self.dropped += len(request.items) - request.handed
                    continue
                after = self._fits(batch, spent, request.items[request.handed], key[0])
                if after is None:
                    full = True
                    break
                spent = after
                batch.append((request, request.handed))
                request.handed += 1
                if request.handed == len(request.items):
                    queue.remove(request)
        if queue:
            self._groups.move_to_end(key)  # other options get the next turn
        else:
            del self._groups[key]
        return batch

    async def _decode(self, batch: list[tuple[_Request, int]], options: Any) -> None:
        loop = asyncio.get_running_loop()
        items = [request.items[i] for request, i in batch]
        requests = {id(r): r for r, _ in batch}
        self._last_requests = len(requests)
        self.calls += 1
        self.items += len(items)
        work = sum(self.cost(item, options) for item in items) if self.cost else 0
        start = loop.time()
        waiting = list(requests.values())

        def stop() -> bool:  # read from the decode thread: done() only reads a state
            return all(r.future.done() for r in waiting)

        try:
            if self._inline(items, work, options):
                results = _decode_batch(self.decode, items, options, stop)
            else:
                results = await loop.run_in_executor(
                    self.executor, _decode_batch, self.decode, items, options, stop
                )
        except Exception as err:  # fail the requests in this batch, keep serving the rest
            for request in requests.values():
                self._drop(request)
                if not request.future.done():
                    request.future.set_exception(err)
            return
        finally:
            took = loop.time() - start
            if work > 0:
                rate = took / work
                self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
            if self.observe is not None:
                self.observe(len(items), took)
        for (request, i), result in zip(batch, results, strict=True):
            request.results[i] = result
            request.done += 1
            if request.done == len(request.items) and not request.future.done():
                request.future.set_result(request.results)

    def _inline(self, items: list[Any], work: int, options: Any) -> bool:
        """Whether to decode this batch on the event loop's thread: one short item (see
        ``inline_cost``), or a batch predicted to take at most ``inline_seconds``, with
        options ``inline_options`` allows."""
        if self.cost is None:
            return False
        if self.inline_options is not None and not self.inline_options(options):
            return False
        if len(items) == 1 and work <= self.inline_cost:
            return True
        return self._rate is not None and work * self._rate <= self.inline_seconds

    def _drop(self, request: _Request) -> None:
        for key, queue in list(self._groups.items()):
            if request in queue:
                queue.remove(request)
                if not queue:
                    del self._groups[key]
