"""``--workers N`` when the supervisor dies outright: its workers stop instead of serving on
as orphans, and leave no metrics files behind."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.serve.test_server import post, start
from transduce.atomic import pid_space


def _workers(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited (its reaper, init here, may be slow)


def test_workers_stop_when_the_supervisor_is_killed(text_run):
    proc, url = start("--model", str(text_run), "--workers", "2")
    try:
        workers = _workers(proc.pid)
        assert len(workers) == 2
        status, _, _ = post(url + "/v1/translate", {"texts": ["αβγ"]})
        assert status == 200
        environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
        shared = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
        folder = Path(shared.partition(b"=")[2].decode())
        assert any(folder.iterdir())  # the workers' metrics files
        os.kill(proc.pid, signal.SIGKILL)  # no chance to stop its workers
        proc.wait(10)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "orphaned workers are still running"
            time.sleep(0.1)
        assert not folder.exists(), sorted(p.name for p in folder.iterdir())  # the last out
        host, port = urlsplit(url).hostname, urlsplit(url).port
        with socket.socket() as probe:  # nothing answers on the port any more
            assert probe.connect_ex((host, port)) != 0
        assert "the supervisor" in proc.stderr.read()
    finally:
        for pid in _workers(proc.pid) if _alive(proc.pid) else []:
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


def test_the_next_server_removes_the_metrics_of_one_killed_whole(text_run):
    proc, _ = start("--model", str(text_run), "--workers", "2")
    workers = _workers(proc.pid)
    environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
    shared = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    folder = Path(shared.partition(b"=")[2].decode())
    assert folder.name.startswith(f"transduce-serve-metrics-{proc.pid}@{pid_space()}-")
    for pid in [proc.pid, *workers]:  # the whole group at once: nobody left to clean up
        os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert folder.is_dir()
    mine = folder.with_name(f"transduce-serve-metrics-notes-{os.getpid()}")  # not ours: stays
    mine.mkdir(exist_ok=True)
    again, _ = start("--model", str(text_run), "--workers", "2")
    try:
        assert not folder.exists() and mine.is_dir()
    finally:
        again.send_signal(signal.SIGTERM)
        again.communicate(timeout=60)
        mine.rmdir()
