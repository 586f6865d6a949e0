"""Tiny trained runs for the server tests (trained once per session, in seconds): a Greek
reversal model with attention, a two-input model and a forecasting model (the exported
transformer, ``exports``, is tests/conftest.py's)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import tiny_config, write_tsv
from transduce.config import Config, from_dict
from transduce.tasks.train import train

GREEK = "αβγδεζηθ"


def greek_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short Greek strings and their reversal: Greek on the page must read upright."""
    rng = random.Random(seed)
    words = ["".join(rng.choice(GREEK) for _ in range(rng.randint(2, 6))) for _ in range(n)]
    return [(w, w[::-1]) for w in words]


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_text")
    tsv = write_tsv(tmp / "greek.tsv", greek_pairs(400))
    cfg = tiny_config(tsv, train={"epochs": 6}, model={"preset": "bahdanau"})
    train(cfg, tmp / "greek")
    return tmp / "greek"


@pytest.fixture(scope="session")
def qa_run(tmp_path_factory):
    """Answer = the question's first word repeated from the document: two input fields."""
    tmp = tmp_path_factory.mktemp("serve_qa")
    rng = random.Random(1)
    with open(tmp / "qa.jsonl", "w", encoding="utf-8") as f:
        for _ in range(120):
            q = "".join(rng.choice("abc") for _ in range(3))
            d = "".join(rng.choice("xyz") for _ in range(3))
            f.write(json.dumps({"question": q, "document": d, "answer": q[0] + d[0]}) + "\n")
    raw = {
        "data": {
            "format": "jsonl",
            "train": str(tmp / "qa.jsonl"),
            "valid_fraction": 0.2,
            "src_fields": ["question", "document"],
            "tgt_field": "answer",
        },
        "model": {
            "preset": "luong",
            "cell": "gru",
            "encoder": {"embed_size": 8, "hidden_size": 16},
            "decoder": {"embed_size": 8, "hidden_size": 16},
        },
        "train": {"batch_size": 16, "epochs": 1, "lr": 0.01, "progress": False},
        "decode": {"max_len": 8},
    }
    train(from_dict(Config, raw), tmp / "qa")
    return tmp / "qa"


@pytest.fixture(scope="session")
def series_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve_series")
    rng = np.random.default_rng(0)
    t = np.arange(60)
    with open(tmp / "train.csv", "w", encoding="utf-8") as f:
        f.write("V1," + ",".join(f"V{i + 2}" for i in range(60)) + "\n")
        for i in range(6):
            x = rng.uniform(20, 200) * (1 + 0.4 * np.sin(2 * np.pi * t / 6))
            f.write(f"S{i}," + ",".join(f"{v:.3f}" for v in x) + "\n")
    raw = {
        "series": {
            "format": "m4",
            "train": str(tmp / "train.csv"),
            "horizon": 6,
            "lookback": 18,
            "period": 6,
            "stride": 2,
        },
        "model": {
            "preset": "luong",
            "cell": "gru",
            "attention": {"input_feeding": False},
            "encoder": {"embed_size": 8, "hidden_size": 16},
            "decoder": {"embed_size": 8, "hidden_size": 16},
        },
        "train": {
            "lr": 0.01,
            "batch_size": 16,
            "max_steps": 20,
            "epochs": 100,
            "valid_every": 10,
            "valid_exact": False,
            "log_every": 0,
            "progress": False,
        },
    }
    train(from_dict(Config, raw), tmp / "fc")
    return tmp / "fc"


@contextlib.contextmanager
def running_server(*args: str, timeout: float = 120.0):
    """``transduce serve --port 0 ARGS`` in a subprocess; yields its base URL (loopback)."""
    cmd = [sys.executable, "-m", "transduce", "-q", "serve", "--port", "0", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = select.select([proc.stdout], [], [], timeout)[0]
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server():
    """``server(*args)``: a context manager running ``transduce serve`` (see running_server)."""
    return running_server
