"""The metrics of several workers: the gauges a killed worker leaves behind are forgotten,
a live worker's are kept (tests/serve/test_server.py runs the same with real workers)."""

from __future__ import annotations

import glob
import os
import subprocess

import pytest

from transduce.config import ConfigError
from transduce.serve import metrics
from transduce.serve.metrics import forget_dead_workers


def test_only_dead_workers_gauges_are_forgotten(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    mine = os.getpid()
    for pid in (gone.pid, mine):
        for mode in ("livesum", "livemin"):
            (tmp_path / f"gauge_{mode}_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{gone.pid}.db").write_bytes(b"")  # counters stay: they are sums
    assert forget_dead_workers(str(tmp_path), supervisor=os.getppid()) == [gone.pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{gone.pid}.db",
        f"gauge_livemin_{mine}.db",
        f"gauge_livesum_{mine}.db",
    ]
    assert forget_dead_workers(str(tmp_path), supervisor=os.getppid()) == []


def test_a_pid_held_by_a_process_that_is_no_worker_is_forgotten(tmp_path):
    """A dead worker's pid taken by another process (here: pid 1, never a worker of this
    test's parent) must not pin the gauges: it is not a child of the supervisor."""
    (tmp_path / "gauge_livemin_1.db").write_bytes(b"")
    (tmp_path / f"gauge_livemin_{os.getpid()}.db").write_bytes(b"")
    assert forget_dead_workers(str(tmp_path), supervisor=os.getppid()) == [1]
    assert [p.name for p in tmp_path.iterdir()] == [f"gauge_livemin_{os.getpid()}.db"]


def test_two_scrapes_forgetting_the_same_worker_both_succeed(tmp_path, monkeypatch):
    """Two workers scraping at once both list a dead worker's files; the one that removes
    them second finds them gone, which is not an error (a 500 from /metrics was)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f"gauge_livesum_{gone.pid}.db"
    listing = [str(stale)]  # what the other scrape saw before removing the file
    monkeypatch.setattr(glob, "glob", lambda pattern: listing)
    assert forget_dead_workers(str(tmp_path), supervisor=os.getppid()) == [gone.pid]


def test_a_users_multiprocess_folder_must_exist_and_is_not_shared(tmp_path, monkeypatch):
    monkeypatch.delenv(metrics.SHARED_ENV, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"PROMETHEUS_MULTIPROC_DIR=.*no such folder"):
        metrics.ServeMetrics()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert metrics.ServeMetrics().shared == ""  # a one-process server reports its own values
