"""The server as a process: SIGTERM lets an in-flight request finish and exits 0; a client
that trickles its request is disconnected; access lines are JSON with the request id;
flags come from TRANSDUCE_SERVE_* variables."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from transduce.serve.sockets import REUSE_PORT


def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "transduce", "-q", "serve", "--port", "0", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready = select.select([proc.stdout], [], [], 120)[0]
    line = proc.stdout.readline() if ready else ""
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, match.group(1)


def until(condition, seconds: float = 120.0) -> None:
    """Wait for ``condition()`` (a test that waits for ever hangs the suite instead)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def post(url: str, body: dict, headers: dict | None = None) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=120) as reply:
        return reply.status, json.loads(reply.read()), dict(reply.headers)


def test_sigterm_finishes_the_slow_request_and_exits_0(text_run):
    proc, url = start("--model", str(text_run), "--max-batch-work", "1000000000")
    try:
        slow = {"texts": ["αβγδεζηθ" * 128] * 64, "max_len": 300}
        t0 = time.perf_counter()
        post(url + "/v1/translate", {"texts": ["αβγδεζηθ" * 128] * 8, "max_len": 300})
        probe = time.perf_counter() - t0  # an eighth of the slow request
        got: dict = {}
        worker = threading.Thread(target=lambda: got.update(r=post(url + "/v1/translate", slow)))
        worker.start()
        time.sleep(min(1.0, probe))
        proc.send_signal(signal.SIGTERM)
        worker.join(120)
        assert got["r"][0] == 200 and len(got["r"][1]["results"]) == 64
        assert proc.wait(60) == 0
        refused = socket.socket()
        assert refused.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) != 0
        refused.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_slow_clients_are_dropped_and_access_lines_are_json(text_run):
    env = {
        "TRANSDUCE_SERVE_READ_TIMEOUT_S": "1",
        "TRANSDUCE_SERVE_LOG_FORMAT": "json",
        "TRANSDUCE_SERVE_MAX_TEXTS": "2",
    }
    proc, url = start("--model", str(text_run), "--max-texts", "3", env=env)
    try:
        host, port = url[len("http://") :].split(":")
        trickle = socket.create_connection((host, int(port)))
        trickle.sendall(b"POST /v1/translate HTTP/1.1\r\nHost: x\r\n")  # never finishes
        silent = socket.create_connection((host, int(port)))
        stalled = socket.create_connection((host, int(port)))  # headers whole, body never
        stalled.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b'application/json\r\nContent-Length: 100\r\n\r\n{"texts"'
        )
        piped = socket.create_connection((host, int(port)))  # a whole request, then a stall
        first = b'{"texts": ["a"]}'
        piped.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (len(first), first)
            + b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b'application/json\r\nContent-Length: 100\r\n\r\n{"texts"'
        )
        for s in (trickle, silent, stalled, piped):
            s.settimeout(10)
        t0 = time.perf_counter()
        assert trickle.recv(100) == b"" and silent.recv(100) == b""  # closed by the server
        assert stalled.recv(100) == b""
        replies = b""
        while chunk := piped.recv(65536):  # the first answered, then closed
            replies += chunk
        assert replies.startswith(b"HTTP/1.1 200") and replies.count(b"HTTP/1.1") == 1
        assert time.perf_counter() - t0 < 5
        status, _, headers = post(
            url + "/v1/translate", {"texts": ["α"] * 3}, {"X-Request-ID": "drill-7"}
        )
        assert status == 200 and headers["x-request-id"] == "drill-7"  # flag beat the variable
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    mine = [x for x in lines if x["request_id"] == "drill-7"]
    assert mine and mine[0]["route"] == "/v1/translate" and mine[0]["status"] == 200
    assert mine[0]["latency_ms"] > 0 and proc.returncode == 0


def metric(url: str, name: str) -> float:
    """The sum of a metric's samples in ``/metrics`` (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def test_a_short_request_is_served_while_the_largest_decodes_and_a_gone_client_stops(text_run):
    """Default limits: 256 texts of 1,024 characters at max_len 390 (99,840 of the 100,000
    budget) decode in short batches; a one-word request sent meanwhile answers within 3 s.
    The big request's client then disconnects: at most one more batch of it is decoded."""
    proc, url = start("--model", str(text_run))
    try:
        host, port = url[len("http://") :].split(":")
        body = json.dumps({"texts": ["αβγδεζηθ" * 128] * 256, "max_len": 390}).encode()
        big = socket.create_connection((host, int(port)))
        big.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        until(lambda: metric(url, "transduce_inputs_decoded_total") > 0)
        t0 = time.perf_counter()
        status, reply, _ = post(url + "/v1/translate", {"texts": ["αβ"]})
        waited = time.perf_counter() - t0
        assert status == 200 and reply["results"][0]["hypotheses"] and waited <= 3.0, waited
        big.close()
        until(lambda: metric(url, "transduce_requests_cancelled_total") > 0)
        time.sleep(0.5)
        settled = metric(url, "transduce_inputs_decoded_total")
        time.sleep(1.0)
        assert metric(url, "transduce_inputs_decoded_total") == settled < 256
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_workers_share_the_port_and_stop_on_sigterm(text_run):
    proc, url = start("--model", str(text_run), "--workers", "2")
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= 2  # uvicorn's spawned worker processes
        for _ in range(10):
            status, reply, _ = post(url + "/v1/translate", {"texts": ["αβγ"] * 2})
            assert status == 200 and reply["results"][0]["hypotheses"]
        # whichever worker answers the scrape reports both workers' counts
        assert metric(url, "transduce_inputs_decoded_total") == 20
        assert metric(url, "transduce_batch_size_count") >= 10
        # and the server's readiness and queue depth, not the answering worker's: both
        # workers publish them (one gauge file each), the scrape combines them
        deadline = time.monotonic() + 60  # 1 once the second worker has loaded too
        while metric(url, "transduce_ready") != 1:
            assert time.monotonic() < deadline, "the workers never all became ready"
            time.sleep(0.1)
        assert metric(url, "transduce_queue_depth") == 0
        workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(workers) == 2  # not multiprocessing's resource tracker
        environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
        shared = next(e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
        folder = Path(shared.partition(b"=")[2].decode())
        assert {f"gauge_livemin_{pid}.db" for pid in workers} <= {p.name for p in folder.iterdir()}
        # a worker killed outright leaves its gauges behind; the next scrape forgets them
        os.kill(int(workers[0]), signal.SIGKILL)
        deadline = time.monotonic() + 60
        while (folder / f"gauge_livemin_{workers[0]}.db").exists():
            assert time.monotonic() < deadline, "a dead worker's gauges are still read"
            with contextlib.suppress(OSError):  # the dead worker's socket may refuse
                assert metric(url, "transduce_ready") in (0, 1)
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def _sockets_on(port: int) -> dict[str, list[str]]:
    """This machine's TCP sockets on local ``port`` from /proc/net/tcp{,6}: state (hex,
    0A = listening, 01 = established) -> socket inodes."""
    found: dict[str, list[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():  # a kernel without IPv6
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.setdefault(cols[3], []).append(cols[9])
    return found


def _owner(inodes: list[str], pids: list[str]) -> dict[str, int]:
    """How many of ``inodes`` each process of ``pids`` holds."""
    held = dict.fromkeys(pids, 0)
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held[pid] += 1
    return held


@pytest.mark.skipif(not REUSE_PORT, reason="SO_REUSEPORT and /proc (Linux) are needed")
def test_workers_listen_on_sockets_of_their_own_and_share_a_burst_of_clients(text_run):
    """``--workers 2`` on Linux: each worker listens on an SO_REUSEPORT socket of its own
    (the parent's only holds the port), so 32 keep-alive connections opened at once are
    spread over both workers instead of landing on whichever woke first; a second server
    on the same port is refused in one line."""
    proc, url = start("--model", str(text_run), "--workers", "2")
    port = int(url.rsplit(":", 1)[1])
    conns = []
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        deadline = time.monotonic() + 120  # the banner comes once the first worker is ready
        while len(_sockets_on(port).get("0A", [])) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        listening = _sockets_on(port).get("0A", [])
        workers = [pid for pid, n in _owner(listening, children).items() if n == 1]
        assert len(listening) == 2 and len(workers) == 2  # one each, none in the parent
        conns = [socket.create_connection(("127.0.0.1", port), timeout=60) for _ in range(32)]
        body = json.dumps({"texts": ["αβγ"]}).encode()
        head = "POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        for c in conns:
            c.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        for c in conns:
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
        held = _owner(_sockets_on(port).get("01", []), workers)
        assert sum(held.values()) == 32
        assert min(held.values()) >= 4, held  # each a share (P(< 4 of 32) ~ 1e-6 by hash)
        again = ["serve", "--model", str(text_run), "--port", str(port), "--workers", "2"]
        second = subprocess.run(
            [sys.executable, "-m", "transduce", *again],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode != 0 and "cannot listen on" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        for c in conns:
            c.close()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0


def test_default_threads_never_splits_a_small_machine_per_process():
    """The default intra-op threads (a pure function of the usable cores and --workers):
    one per worker unless each worker has 4 cores of its own (2 threads in one process was
    the slowest setting measured on 2 cores), never more than its share of the cores."""
    from transduce.serve.server import default_threads, usable_cores

    for cores in range(1, 65):
        for workers in range(1, 17):
            threads, share = default_threads(cores, workers), cores // workers
            assert 1 <= threads <= min(4, max(1, share))  # within the worker's share, capped
            assert (threads > 1) == (share >= 4)  # several only where each worker has 4+
    assert default_threads(2, 1) == default_threads(2, 2) == 1  # this machine's cores
    assert usable_cores() >= 1


def test_a_busy_keep_alive_client_outlives_the_read_deadline(text_run):
    """Sequential requests on one kept-alive connection for 3.5 read deadlines: none is cut
    off (the deadline once ran from the connection's start and fired between requests)."""
    import http.client

    proc, url = start("--model", str(text_run), "--read-timeout-s", "1")
    try:
        host, port = url[len("http://") :].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({"texts": ["α"]})
        sent, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3.5:
            conn.request("POST", "/v1/translate", body, {"Content-Type": "application/json"})
            reply = conn.getresponse()
            assert reply.status == 200, reply.read()
            reply.read()
            sent += 1
            time.sleep(0.05)
        assert sent > 20
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_a_fractional_keep_alive_is_honoured(text_run):
    """--keep-alive-s 0.3 was rounded to 1 s (and 2.5 to 2): an idle kept-alive connection
    now closes after the 0.3 s given."""
    import socket

    proc, url = start("--model", str(text_run), "--keep-alive-s", "0.3")
    try:
        host, port = url[len("http://") :].split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            t0, got = time.perf_counter(), b""
            while chunk := sock.recv(65536):  # the reply, then the server's close
                got += chunk
            idle = time.perf_counter() - t0
        assert got.startswith(b"HTTP/1.1 200") and idle < 0.9, idle
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)


def test_requests_pipelined_far_ahead_of_their_replies_are_bounded(text_run):
    """A client writing pipelined requests it never reads had the server parse and queue
    all of them (8 such clients: +1 GB); past 1,024 waiting the connection now gets a 400
    and closes, while a client that pipelines 500 and reads gets 500 replies."""
    import socket

    proc, url = start("--model", str(text_run))
    try:
        host, port = url[len("http://") :].split(":")
        one = b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        for count, whole in ((500, True), (5000, False)):
            got, cut = b"", False
            with socket.create_connection((host, int(port)), timeout=30) as sock:
                try:
                    sock.sendall(one * count)
                    while got.count(b"HTTP/1.1 ") < count:
                        if not (chunk := sock.recv(1 << 20)):
                            cut = True  # the server closed the connection
                            break
                        got += chunk
                except ConnectionError:  # closed while we still wrote
                    cut = True
            replies = got.count(b"HTTP/1.1 200")
            assert (replies == count and not cut) if whole else (cut and replies < count)
        with urllib.request.urlopen(url + "/health/live", timeout=30) as reply:
            assert reply.status == 200  # and the server goes on
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err


def test_workers_whose_model_cannot_load_stop_the_server_with_one_line(text_run, tmp_path):
    """With --workers 2 a worker that cannot load exits as a start-up failure: the server
    stops with the reason in one line and exit 2, as one process does (it had stayed up,
    live and never ready, with uvicorn restarting the worker forever)."""
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(text_run, bad)
    (bad / "model.safetensors").write_bytes(b"\0" * 100)
    cmd = [sys.executable, "-m", "transduce", "-q", "serve", "--port", "0"]
    cmd += ["--model", str(bad), "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    said = [x for x in done.stderr.splitlines() if "error" in x or "failed" in x]
    assert done.returncode == 2 and len(said) == 1, done.stderr
    assert said[0].startswith("transduce serve: error: ") and "model.safetensors" in said[0]
    assert "Traceback" not in done.stderr


def test_a_request_cut_by_the_graceful_timeout_gets_a_json_503(text_run):
    """SIGTERM with --graceful-timeout-s 1 during a decode of several seconds: the client
    gets a 503 in the API's JSON (it got uvicorn's plain-text 500), the server exits 0."""
    import urllib.error

    big = "1000000000"
    flags = ["--max-batch-work", big, "--max-compute", big, "--graceful-timeout-s", "1"]
    proc, url = start("--model", str(text_run), *flags)
    try:
        slow = {"texts": ["αβγδεζηθ" * 128] * 256, "max_len": 390, "beam": 8}
        got: dict = {}

        def call() -> None:
            try:
                got["r"] = post(url + "/v1/translate", slow)
            except urllib.error.HTTPError as err:
                got["r"] = (err.code, json.loads(err.read()), dict(err.headers))

        worker = threading.Thread(target=call)
        worker.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(120)
        status, body, _ = got["r"]
        assert status == 503 and "shutting down" in body["error"], body
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read()


def test_methods_without_a_body_get_405_not_413(text_run):
    """OPTIONS, PUT and DELETE on an API route without a Content-Length get the route's
    405 (the body-size gate had answered 413 for a body that was not there); an HTTP/1.0
    client asking for a stream gets a 422 (events need a chunked reply, which 1.0 lacks)."""
    proc, url = start("--model", str(text_run))
    try:
        host, port = url[len("http://") :].split(":")
        for method in (b"OPTIONS", b"PUT", b"DELETE"):
            with socket.create_connection((host, int(port)), timeout=30) as s:
                s.sendall(
                    method + b" /v1/translate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                )
                reply = b""
                while chunk := s.recv(65536):
                    reply += chunk
            assert reply.startswith(b"HTTP/1.1 405"), reply[:200]
        body = b'{"texts": ["a"], "stream": true}'
        with socket.create_connection((host, int(port)), timeout=30) as s:  # no chunks in 1.0
            s.sendall(
                b"POST /v1/translate HTTP/1.0\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert b" 422 " in reply.split(b"\r\n")[0] and b'"field":"stream"' in reply, reply
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
