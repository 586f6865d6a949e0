"""The server as it runs: httptools and uvloop when installed (the serve extra), the 16 KiB
cap on a request's head kept with httptools, and an export served without importing torch
even where torch is installed (the process reports its modules at exit)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from transduce.serve.protocols import MAX_HEAD_BYTES, http_protocol
from transduce.serve.server import ServerSettings, uvicorn_config

# runs ``transduce ARGS`` and, at exit, writes which modules the process imported
PROBE = (
    "import atexit, sys, json, runpy\n"
    "atexit.register(lambda: print('MODULES ' + json.dumps({m: m in sys.modules for m in "
    "('torch', 'httptools', 'uvloop')}), file=sys.stderr, flush=True))\n"
    "sys.argv = ['transduce', *sys.argv[1:]]\n"
    "runpy.run_module('transduce', run_name='__main__')\n"
)


def probed_serve(*args: str) -> tuple[dict, list[bytes]]:
    """Serve ``args`` on a free port, send a translation, a /health and an over-long head,
    then SIGTERM; returns the modules report and the replies' first lines."""
    cmd = [sys.executable, "-c", PROBE, "-q", "serve", "--port", "0", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline() if select.select([proc.stdout], [], [], 120)[0] else ""
        match = re.search(r"listening on (http://\S+)", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        url = match.group(1)
        body = json.dumps({"texts": ["abc"]}).encode()
        req = urllib.request.Request(
            url + "/v1/translate", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as reply:
            assert reply.status == 200 and json.loads(reply.read())["results"]
        host, port = url[len("http://") :].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * MAX_HEAD_BYTES)
            s.sendall(b"\r\n\r\n")
            head = s.recv(4096).split(b"\r\n")[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    report = [x for x in err.splitlines() if x.startswith("MODULES ")]
    return json.loads(report[-1][len("MODULES ") :]), [head]


def test_uvicorn_is_configured_with_httptools_and_uvloop_when_installed():
    pytest.importorskip("httptools")
    pytest.importorskip("uvloop")
    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    config = uvicorn_config(lambda *a: None, ServerSettings(["x"]))
    config.load()
    assert config.http_protocol_class is http_protocol()
    assert issubclass(config.http_protocol_class, HttpToolsProtocol)
    loop = config.get_loop_factory()()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_an_export_is_served_without_torch_and_a_run_with_it(exports):
    """The same probe on the export's training run sees torch: it can fail."""
    pytest.importorskip("torch")
    modules, heads = probed_serve("--model", str(exports["onnx"]), "--threads", "1")
    assert modules["torch"] is False
    fast = all(importlib.util.find_spec(m) for m in ("httptools", "uvloop"))
    assert not fast or (modules["httptools"] and modules["uvloop"])
    assert heads[0].startswith(b"HTTP/1.1 400")  # the head over 16 KiB, refused
    modules, _ = probed_serve("--model", str(exports["run"]), "--threads", "1")
    assert modules["torch"] is True
