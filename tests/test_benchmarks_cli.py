"""The benchmark scripts refuse a bad flag or a missing prerequisite up front, in one line:
exit status 2, one ``SCRIPT: error: ...`` line last on stderr (argparse's usage lines may
come before it), no traceback, within seconds (before any training or decoding)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(tmp_path: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "TRANSDUCE_DEBUG"}
    environ.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **env)
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=tmp_path,  # the scripts' default run folders do not exist there
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _one_error_line(done: subprocess.CompletedProcess, script: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    name = Path(script).name
    assert errors == [lines[-1]] and lines[-1].startswith(f"{name}: error: "), done.stderr
    return lines[-1]


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        ("decode_speed.py", ["--rounds", "0"], "--rounds: expected an integer >= 1, got 0"),
        ("decode_speed.py", ["--threads", "-1"], "--threads: expected an integer >= 0"),
        ("decode_speed.py", ["--engines", "torch,onnx"], "needs --export onnx=DIR"),
        ("serve_load.py", ["--clients", "a,b"], "--clients: expected comma-separated"),
        ("serve_load.py", ["--settings", "1y1"], "WORKERSxTHREADS"),
        ("stream_latency.py", ["--lines", "0"], "--lines: expected an integer >= 1"),
        ("stream_latency.py", ["--model", "missing"], "--model missing: not a trained run"),
        ("train_speed.py", ["--steps", "-3"], "--steps: expected an integer >= 1"),
        ("train_speed.py", ["--config", "nope.yaml"], "nope.yaml: config file not found"),
        ("kill_loop.py", ["--kills", "-1"], "--kills: expected an integer >= 1, got -1"),
        ("m4_hourly.py", ["--level", "150", "--score-only"], "percentage in (0, 100)"),
        ("peers/joeynmt_speed.py", ["--joey", "/nonexistent"], "pip install --no-deps joeynmt"),
        ("peers/opennmt_speed.py", ["--onmt", "/nonexistent"], "--onmt: /nonexistent: no such"),
    ],
)
def test_a_bad_flag_is_one_line(tmp_path, script, args, says):
    line = _one_error_line(_run(tmp_path, script, *args), script)
    assert says in line


def test_transduce_debug_gives_the_traceback(tmp_path):
    done = _run(tmp_path, "train_speed.py", "--config", "nope.yaml", TRANSDUCE_DEBUG="1")
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert "ConfigError: nope.yaml: config file not found" in done.stderr


@pytest.mark.skipif(importlib.util.find_spec("keras") is not None, reason="Keras installed")
def test_the_keras_peer_says_what_to_install(tmp_path):
    data = tmp_path / "ell.txt"
    data.write_text("Hi.\tΓεια.\n", encoding="utf-8")
    script = "peers/keras_seed_char.py"
    done = _run(tmp_path, script, "--data", str(data), KERAS_BACKEND="torch")
    line = _one_error_line(done, script)
    assert "keras is not installed" in line and "pip install tensorflow-cpu" in line


def test_gpu_check_help_prints_its_usage():
    done = subprocess.run(
        ["bash", str(BENCH / "gpu_check.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh" in done.stdout
    assert not done.stdout.startswith("#") and "set -uo" not in done.stdout
