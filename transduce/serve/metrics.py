"""Prometheus metrics of one server process (``GET /metrics``, text exposition format).

Each app has its own registry, so several apps in one process (tests) count apart. With
``--workers N`` the counters and histograms go through prometheus-client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR``, set by the parent before it starts the workers), so a
scrape that reaches any worker reports the whole server. So do the queue depth (summed over
the live workers) and readiness (1 only while every live worker is ready): each worker
publishes them to multiprocess gauges when a request joins its queue, after every batch and
when it becomes ready, and a scrape first forgets the gauges of workers that have died
(``kill -9``; uvicorn starts another). A folder the user names in
``PROMETHEUS_MULTIPROC_DIR`` for a one-process server is not shared this way: that server
reports its own values.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from transduce.config import ConfigError

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
        self._children: dict[tuple, Any] = {}
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

        self.shared = _shared_dir()
        if self.shared:  # the workers' live values, as gauges the scrape combines
            self.depth_gauge = Gauge(
                "transduce_queue_depth",
                "inputs waiting for a batched decode",
                ["model"],
                multiprocess_mode="livesum",
                registry=r,
            )
            self.ready_gauge = Gauge(
                "transduce_ready",
                "1 once every model is loaded",
                multiprocess_mode="livemin",
                registry=r,
            )

    def watch(self, depth: Callable[[], dict[str, int]], ready: Callable[[], bool]) -> None:
        self.depth, self.ready = depth, ready
        if not self.shared:  # one process: read at scrape time
            self.registry.register(_Live(depth, ready))
        else:
            self.publish()

    def publish(self) -> None:
        """Multiprocess mode: this worker's queue depths and readiness, for the others'
        scrapes (a no-op in one process, whose scrape reads them itself)."""
        if self.shared:  # called per request: the labelled children looked up once
            for model, n in self.depth().items():
                child = self._children.get(("depth", model))
                if child is None:
                    child = self._children[("depth", model)] = self.depth_gauge.labels(model)
                child.set(n)
            self.ready_gauge.set(1 if self.ready() else 0)

    def exposition(self) -> bytes:
        """The text format: this process's metrics, or every worker's in multiprocess mode."""
        if not self.shared:
            return generate_latest(self.registry)
        self.publish()
        forget_dead_workers(self.shared)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
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
            self.publish()

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


# set by ``transduce serve --workers N`` (transduce.serve.server.run_workers) to the
# multiprocess folder it made for its workers
SHARED_ENV = "TRANSDUCE_SERVE_METRICS_DIR"


def _shared_dir() -> str:
    """The workers' shared metrics folder, or "" in one process. A user's own
    ``PROMETHEUS_MULTIPROC_DIR`` must exist (prometheus-client writes there)."""
    user = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if user and not os.path.isdir(user):
        raise ConfigError(
            f"PROMETHEUS_MULTIPROC_DIR={user[:200]}: no such folder "
            "(prometheus-client's multiprocess mode writes its metrics there)"
        )
    return os.environ.get(SHARED_ENV, "")


_LIVE_FILE = re.compile(r"gauge_live\w*_(\d+)\.db")


def forget_dead_workers(folder: str, supervisor: int | None = None) -> list[int]:
    """Drop the live gauges of the workers that are gone (a killed worker's last queue
    depth and readiness would count forever); returns their pids. A worker is a child of
    ``supervisor`` (default: this process's parent, the process manager of a worker); a
    pid now held by another process is gone too. Safe when several workers scrape at once
    (a file another one removed first is skipped)."""
    supervisor = os.getppid() if supervisor is None else supervisor
    dead: dict[int, list[str]] = {}
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        match = _LIVE_FILE.fullmatch(os.path.basename(path))
        if match and not _worker_of(int(match.group(1)), supervisor):
            dead.setdefault(int(match.group(1)), []).append(path)
    for paths in dead.values():
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    return sorted(dead)


def _worker_of(pid: int, supervisor: int) -> bool:
    """Whether ``pid`` is a live child of ``supervisor`` (on Linux, from ``/proc``; where
    there is no ``/proc``, whether the pid exists at all)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ")"
    fields = stat[stat.rfind(b")") + 2 :].split()
    return len(fields) > 1 and int(fields[1]) == supervisor
