"""What the routes share, handed to them as FastAPI dependencies: the models (once loaded),
their micro-batchers, the limits and the metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request

from transduce.serve.backend import ServedModel
from transduce.serve.batcher import Arrivals, MicroBatcher
from transduce.serve.errors import ApiError
from transduce.serve.limits import ServeLimits, item_work
from transduce.serve.metrics import ServeMetrics

log = logging.getLogger("transduce.serve")
# a lone text whose item_work (beam x (max_len + 8) x characters) is at most this decodes
# on the event loop's thread (MicroBatcher.inline_cost): a greedy sentence of ~60 characters
# at max_len 100, a few milliseconds at most on the engines here
INLINE_COST = 6_500
# a batch predicted (from the model's recent batches) to decode within this many seconds
# decodes on the event loop's thread too (MicroBatcher.inline_seconds)
INLINE_SECONDS = 0.02


class ServeState:
    """One server process's models and machinery; ``ready`` once every model is loaded."""

    def __init__(self, limits: ServeLimits, names: list[str]) -> None:
        self.limits, self.names = limits, names
        self.models: dict[str, ServedModel] = {}
        self.batchers: dict[str, MicroBatcher] = {}
        self.arrivals = Arrivals()
        self.ready = False
        self.failed: str | None = None
        # called with the reason when the models cannot load (a worker of several exits)
        self.on_failure: Callable[[str], None] | None = None
        self.after_close: Callable[[], None] | None = None  # the app's last act (server.py)
        self.metrics = ServeMetrics()
        self.metrics.watch(self.depth, lambda: self.ready)
        # one decode at a time: a second thread would only slow both on the same cores
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="transduce-decode")

    def install(self, models: dict[str, ServedModel]) -> None:
        """Take the loaded models: a micro-batcher each, then ready."""
        lim = self.limits
        for name, m in models.items():
            text = m.kind == "text"
            cost = _text_cost(m) if text else _series_cost(m)
            self.batchers[name] = MicroBatcher(
                m.decode,
                self.executor,
                lim.max_batch_size,
                lim.max_wait_ms,
                self.arrivals,
                cost=cost,
                max_cost=lim.max_batch_work if text else lim.max_batch_size,
                observe=self.metrics.observer(name),
                inline_cost=INLINE_COST if text else 0,
                inline_seconds=INLINE_SECONDS,
                inline_options=_within_defaults(m) if text else None,
                queued=self.metrics.publish if self.metrics.shared else None,
            )
        self.models.update(models)  # in place: app.state.models is this same dict
        self.names = list(models)
        self.ready = True
        self.metrics.publish()  # several workers: the others' scrapes see this one ready

    async def load(self, loader: Callable[[], dict[str, ServedModel]]) -> None:
        """Load in a worker thread (the server answers liveness meanwhile)."""
        try:
            models = await asyncio.to_thread(loader)
        except Exception as err:  # a model that cannot load: not ready, said in the log
            self.failed = str(err).splitlines()[0] if str(err) else type(err).__name__
            if self.on_failure is not None:
                self.on_failure(self.failed)
            return
        self.install(models)

    def depth(self) -> dict[str, int]:
        return {name: b.depth() for name, b in self.batchers.items()}

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.after_close is not None:
            self.after_close()


def _text_cost(model: ServedModel) -> Callable[[Any], int]:
    default_len = getattr(model, "max_len", 100)

    def cost(text: str, options: Any) -> int:
        return item_work(
            len(text),
            options.beam,
            options.nbest,
            options.sample,
            options.max_len or default_len,
            len(getattr(text, "prefix", "")),  # a TextItem's (backend.py)
            len(getattr(text, "constraints", ())),
        )

    return cost


def _within_defaults(model: ServedModel) -> Callable[[Any], bool]:
    """Options whose decode may run on the event loop's thread: not a CTranslate2 seeded
    sample, and outputs no longer than the model's own ``decode.max_len`` (a text that
    never ends runs to it; asked for 1,000 steps, one six-character text held the loop
    for 244 ms)."""
    default_len = getattr(model, "max_len", 100)
    # a seeded sample loads a translator first (CTranslate2: runtime/ct2.py)
    reloads = getattr(getattr(model, "translator", None), "seed_loads_model", False)

    def within(options: Any) -> bool:
        if reloads and options.sample and options.seed is not None:
            return False  # a model load (runtime/ct2.py): never on the event loop
        return options.max_len is None or options.max_len <= default_len

    return within


def _series_cost(model: ServedModel) -> Callable[[Any, Any], int]:
    """One series' work, in forecasts of a window: a normalized band also backtests the
    model on ``windows`` origins of the series' past, so a batch of them holds
    ``max_batch_size / (windows + 1)`` series and takes about as long as a batch of plain
    forecasts (every model shares one decode thread: a batch of 64 such series on a
    four-member ensemble had held it for ~1.5 s)."""
    forecaster = getattr(model, "forecaster", None)
    members = getattr(forecaster, "members", [forecaster])
    found = [getattr(m, "normalized", None) or {} for m in members]
    windows = max((int(n.get("windows", 0)) for n in found), default=0)

    def cost(series: Any, options: Any) -> int:
        return 1 + windows if options and options[1] == "normalized" else 1

    return cost


async def get_state(request: Request) -> ServeState:
    """Dependency: the app's state (async: FastAPI runs a plain function in a thread)."""
    return request.app.state.serve


async def ready_state(request: Request) -> ServeState:
    """Dependency of the API routes: the state, or 503 while models are loading (async:
    FastAPI would hand a plain function to a thread, a hop per request)."""
    state = request.app.state.serve
    if not state.ready:
        why = f"loading failed: {state.failed}" if state.failed else "models are loading"
        raise ApiError(503, "model", f"not ready ({why}); see /health/ready")
    return state
