"""The PyTorch-free install, built for real: a fresh venv gets ``pip install -c constraints.txt
'.[runtime]'`` from the working tree (wheels from the local pip configuration), has no torch,
and serves an ONNX and a CTranslate2 export through ``transduce serve`` on 127.0.0.1: one
translation from each, ``/health/ready`` up. It also runs ``python -m transduce.runtime`` and
reports the venv's installed size and the server's cold start (docs/guide/deploying.md).

Marked ``slow`` (a venv and a pip install: ~1-2 minutes): ``make test`` runs it; locally
``pytest -m 'not slow'`` leaves it out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import TINY_TRANSFORMER, reverse_pairs, tiny_config, write_tsv

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMER = TINY_TRANSFORMER
# Issue 30's target for the serving environment is 200 MB: met by one engine's install as
# the serving image makes it (runtime-onnx 171 MB, runtime-ct2 190 MB: stripped, no
# __pycache__); this venv holds both engines as pip installs them (~363 MiB;
# docs/guide/deploying.md), so this only guards against a torch-sized package coming back.
SIZE_LIMIT_MB = 400

pytestmark = pytest.mark.slow


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{args[:4]}: {proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A venv holding transduce[runtime] and nothing else (a wheel of the working tree,
    built here without build isolation: this environment has the setuptools it needs)."""
    root = tmp_path_factory.mktemp("rtvenv")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(root / "wheel"),
            str(ROOT),
        ]
    )
    wheel = next((root / "wheel").glob("transduce-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")])
    # this environment's pip installs into the new one (--python): no pip inside it to set up
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(root / "venv/bin/python"),
            "install",
            "-q",
            "--no-input",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{wheel}[runtime]",
        ],
        env=env,
    )
    return root / "venv"


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    """A tiny transformer run (this environment has torch) exported to ONNX and CT2."""
    from transduce.commands.cli import main
    from transduce.tasks.train import train

    root = tmp_path_factory.mktemp("rtexp")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(120))
    train(tiny_config(tsv, model=TRANSFORMER, train={"epochs": 2}), root / "run")
    for engine in ("onnx", "ct2"):
        args = ["-q", "export", engine, "--model", str(root / "run"), "--out", str(root / engine)]
        assert main(args) == 0
    rows = [[f"S{i}", *(f"{50 + 10 * (t % 4) + i:.1f}" for t in range(40))] for i in range(5)]
    (root / "hist.csv").write_text(
        "\n".join(",".join(r) for r in [[f"V{i + 1}" for i in range(41)], *rows]) + "\n"
    )
    series = {"format": "m4", "train": str(root / "hist.csv"), "horizon": 4, "lookback": 12}
    cfg = {
        "series": {**series, "period": 4, "stride": 2},
        "model": {"preset": "luong", "encoder": {"hidden_size": 8}, "decoder": {"hidden_size": 8}},
        "train": {"max_steps": 4, "valid_every": 2, "progress": False, "threads": 1},
    }
    (root / "fc.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    assert main(["-q", "train", str(root / "fc.yaml"), "--out", str(root / "fc_run")]) == 0
    assert (
        main(["-q", "export", "onnx", "--model", str(root / "fc_run"), "--out", str(root / "fc")])
        == 0
    )
    return root


def _clean_env(venv: Path) -> dict[str, str]:
    """The venv's own packages only: no PYTHONPATH to this checkout, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "PATH": f"{venv / 'bin'}:{env['PATH']}", "OMP_NUM_THREADS": "1"}


def _get(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as reply:
        return json.loads(reply.read())


def test_the_runtime_venv_has_no_torch_nor_a_torch_sized_package(venv):
    probe = (
        "import importlib.util as u, json, sys; print(json.dumps({m: u.find_spec(m) is not "
        "None for m in sys.argv[1:]}))"
    )
    mods = [
        "torch",
        "safetensors",
        "matplotlib",
        "onnxruntime",
        "ctranslate2",
        "fastapi",
        "prometheus_client",
        "yaml",
        "transduce",
    ]
    found = json.loads(
        _run([str(venv / "bin/python"), "-c", probe, *mods], env=_clean_env(venv), cwd=venv).stdout
    )
    assert found == {m: m not in ("torch", "safetensors", "matplotlib") for m in mods}
    site = next(venv.glob("lib/python3*/site-packages"))
    size = int(_run(["du", "-sb", str(site)]).stdout.split()[0]) / 2**20
    print(f"\ntransduce[runtime] venv: site-packages {size:.1f} MiB")
    assert size <= SIZE_LIMIT_MB


def test_runtime_commands_translate_an_export(venv, exports):
    for engine in ("onnx", "ct2"):
        proc = _run(
            [
                str(venv / "bin/python"),
                "-m",
                "transduce.runtime",
                "translate",
                "--model",
                str(exports / engine),
                "--threads",
                "1",
            ],
            input="abc\n\nfedcb\n",
            env=_clean_env(venv),
            cwd=venv,
        )
        assert len(proc.stdout.splitlines()) == 3 and proc.stdout.splitlines()[1] == ""


def test_transduce_serve_serves_both_exports_without_torch(venv, exports):
    """As the serving image runs it: ``transduce serve`` configured by TRANSDUCE_SERVE_*:
    text exports of both engines and a forecasting export."""
    env = {
        **_clean_env(venv),
        "TRANSDUCE_SERVE_MODEL": f"o={exports / 'onnx'} c={exports / 'ct2'} f={exports / 'fc'}",
        "TRANSDUCE_SERVE_HOST": "127.0.0.1",
        "TRANSDUCE_SERVE_PORT": "0",
    }
    start = time.monotonic()
    server = subprocess.Popen(
        [str(venv / "bin/transduce"), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=venv,
    )
    try:
        line = server.stdout.readline()  # "transduce serve: listening on http://HOST:PORT ..."
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"no address in {line!r}; stderr: {server.stderr.read()[-2000:]}"
        base = f"http://127.0.0.1:{match[1]}"
        with urllib.request.urlopen(base + "/health/ready", timeout=10) as reply:
            assert reply.status == 200  # the banner comes once every model is loaded
        print(f"\ntorch-free serve of two exports: ready after {time.monotonic() - start:.2f} s")
        for name in ("o", "c"):
            reply = _get(f"{base}/v1/translate", {"texts": ["abc", ""], "model": name})
            texts = [r["hypotheses"][0]["text"] for r in reply["results"]]
            assert len(texts) == 2 and texts[1] == ""
        history = [{"id": "S0", "values": [50.0 + 10 * (t % 4) for t in range(24)]}]
        forecast = _get(f"{base}/v1/forecast", {"series": history, "model": "f"})
        assert len(forecast["forecasts"][0]["values"]) == 4  # a forecasting export, no torch
        with urllib.request.urlopen(base + "/metrics", timeout=10) as reply:
            assert b"transduce" in reply.read()  # prometheus-client is in the runtime too
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0  # SIGTERM: a graceful stop
