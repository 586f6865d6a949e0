"""The metrics of several workers: the gauges a killed worker leaves behind are forgotten,
a live worker's are kept (tests/serve/test_server.py runs the same with real workers)."""

from __future__ import annotations

import os
import subprocess

from transduce.serve.metrics import forget_dead_workers


def test_only_dead_workers_gauges_are_forgotten(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    mine = os.getpid()
    for pid in (gone.pid, mine):
        for mode in ("livesum", "livemin"):
            (tmp_path / f"gauge_{mode}_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{gone.pid}.db").write_bytes(b"")  # counters stay: they are sums
    assert forget_dead_workers(str(tmp_path)) == [gone.pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{gone.pid}.db",
        f"gauge_livemin_{mine}.db",
        f"gauge_livesum_{mine}.db",
    ]
    assert forget_dead_workers(str(tmp_path)) == []
