"""Prometheus metrics of one server process (``GET /metrics``, text exposition format).

Each app has its own registry, so several apps in one process (tests) count apart. With
``--workers N`` the counters and histograms go through prometheus-client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set by the parent before it starts the workers), so a
scrape that reaches any worker reports the whole server; the queue depth and readiness
are those of the worker that answered.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Live(Collector):
    """Values read at scrape time: queue depth per model, and readiness."""

    def __init__(self, depth: Callable[[], dict[str, int]], ready: Callable[[], bool]) -> None:
        self.depth, self.ready = depth, ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = GaugeMetricFamily(
            "transduce_queue_depth", "inputs waiting for a batched decode", labels=["model"]
        )
        for model, n in self.depth().items():
            queue.add_metric([model], n)
        yield queue
        yield GaugeMetricFamily("transduce_ready", "1 once every model is loaded", self.ready())


class ServeMetrics:
    """The counters and histograms the server updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple, tuple] = {}
        r = self.registry
        self.requests = Counter(
            "transduce_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "transduce_request_seconds",
            "time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "transduce_batch_size",
            "inputs per batched decode",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "transduce_batch_seconds",
            "time of one batched decode",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inputs = Counter(
            "transduce_inputs_decoded", "inputs (texts or series) decoded", ["model"], registry=r
        )
        self.dropped = Counter(
            "transduce_requests_cancelled",
            "requests whose decode was cancelled (client gone or timed out)",
            ["model", "reason"],
            registry=r,
        )

    def watch(self, depth: Callable[[], dict[str, int]], ready: Callable[[], bool]) -> None:
        self.live = _Live(depth, ready)
        self.registry.register(self.live)

    def exposition(self) -> bytes:
        """The text format: this process's metrics, or every worker's in multiprocess mode."""
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        merged.register(self.live)
        return generate_latest(merged)

    def observer(self, model: str) -> Callable[[int, float], None]:
        """What a model's batcher calls after each batched decode."""
        size, seconds, inputs = (
            self.batch_size.labels(model),
            self.batch_seconds.labels(model),
            self.inputs.labels(model),
        )

        def observe(items: int, elapsed: float) -> None:
            size.observe(items)
            seconds.observe(elapsed)
            inputs.inc(items)

        return observe

    def request(self, route: str, method: str, status: int, elapsed: float) -> None:
        # the labelled children, looked up once per (route, method, status): labels() takes
        # a lock and builds a key on every call
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
