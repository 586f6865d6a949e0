"""Fault injection: a run interrupted at every write a checkpoint makes (an exception at the
k-th write, one real SIGKILL, SIGINT/SIGTERM) resumes to bit-identical weights and metrics,
and leaves no temporary file behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers import metric_rows, reverse_pairs, same_last_weights, tiny_config, write_tsv
from transduce import atomic
from transduce.config import save_config
from transduce.engine import checkpoint as ckpt
from transduce.engine import interrupt
from transduce.engine.loop import Loop
from transduce.tasks.train import train


class Crash(BaseException):
    """Stands in for a kill: a BaseException, so no `except Exception` cleans up after it."""


def _config(tmp_path: Path, **train_keys):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(64, seed=3))
    return tiny_config(tsv, train={"epochs": 2, "keep_checkpoints": 2, **train_keys})


def leftovers(run: Path) -> list[Path]:
    """Temporary files and directories of interrupted writes, and unreferenced checkpoints."""
    names = [p for p in run.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]
    names = [p for p in names if p != run / ".lock"]  # the run's lock file stays (rundir.py)
    ckpts = {p.name for p in (run / "ckpt").iterdir()} if (run / "ckpt").is_dir() else set()
    held = {os.readlink(run / x).split("/")[-1] for x in ("last", "best")}
    return names + sorted(run / "ckpt" / n for n in ckpts - held)


def valid_rows(run: Path) -> list[dict]:
    return [r for r in metric_rows(run) if r["split"] == "valid"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, and the names of the writes it made, in order."""
    tmp = tmp_path_factory.mktemp("faults")
    cfg = _config(tmp)
    writes: list[str] = []
    atomic.fault_hook = writes.append
    try:
        train(cfg, tmp / "full")
    finally:
        atomic.fault_hook = None
    return cfg, tmp / "full", writes


def test_crash_at_every_checkpoint_write_resumes_bit_identical(reference, tmp_path):
    cfg, full, writes = reference
    assert {"weights", "trainer state", "meta", "rename", "switch last", "switch best"} <= set(
        writes
    )
    for k in range(1, len(writes) + 1):
        calls = iter(range(1, 10**6))

        def hook(what: str, k=k, calls=calls) -> None:
            if next(calls) == k:
                raise Crash(what)

        run = tmp_path / f"k{k}"
        atomic.fault_hook = hook
        try:
            with pytest.raises(Crash):
                train(cfg, run)
        finally:
            atomic.fault_hook = None
        if (run / "config.yaml").exists():
            train(out=run, resume=True)
        else:  # killed while writing its config: nothing to resume, and a new start is fine
            train(cfg, run)
        assert same_last_weights(run, full), f"write {k} ({writes[k - 1]})"
        assert valid_rows(run) == valid_rows(full), f"write {k} ({writes[k - 1]})"
        assert leftovers(run) == [], f"write {k} ({writes[k - 1]})"
        assert os.readlink(run / "best") == os.readlink(full / "best")


def test_sigkill_during_a_checkpoint_write(reference, tmp_path):
    """A real SIGKILL in a child process, halfway through its second checkpoint."""
    cfg, full, writes = reference
    k = [i for i, w in enumerate(writes, 1) if w == "trainer state"][1]
    save_config(cfg, tmp_path / "cfg.yaml")
    child = textwrap.dedent(f"""
        import os, signal, itertools
        from transduce import atomic
        from transduce.config import load_config
        from transduce.tasks.train import train
        calls = itertools.count(1)
        def hook(what):
            if next(calls) == {k}:
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.fault_hook = hook
        train(load_config({str(tmp_path / "cfg.yaml")!r}), {str(tmp_path / "run")!r})
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert list((tmp_path / "run" / "ckpt").glob(".tmp-*")), "the kill left no half checkpoint"
    train(out=tmp_path / "run", resume=True)
    assert same_last_weights(tmp_path / "run", full)
    assert valid_rows(tmp_path / "run") == valid_rows(full)
    assert leftovers(tmp_path / "run") == []


def test_interrupt_writes_a_checkpoint_and_resume_is_exact(reference, tmp_path, monkeypatch):
    cfg, full, _ = reference
    update = Loop.update

    def interrupted_update(self, batch):
        out = update(self, batch)
        if self.step == 3:  # mid-epoch, between validations
            interrupt.request(signal.SIGTERM)
        return out

    monkeypatch.setattr(Loop, "update", interrupted_update)
    result = train(cfg, tmp_path / "run")
    assert result.interrupted == signal.SIGTERM and result.steps == 3
    assert ckpt.read_checkpoint(tmp_path / "run")[1]["counters"][0] == 3
    monkeypatch.setattr(Loop, "update", update)
    train(out=tmp_path / "run", resume=True)
    assert same_last_weights(tmp_path / "run", full)
    assert valid_rows(tmp_path / "run") == valid_rows(full)


def test_sigterm_on_the_command_line_prints_the_resume_command(tmp_path):
    cfg = _config(tmp_path, epochs=10_000)
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "my run"
    cmd = [sys.executable, "-m", "transduce", "train", str(tmp_path / "cfg.yaml")]
    cmd += ["--out", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (run / "last").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    line = err.decode().strip().splitlines()[-1]
    assert "resume with: transduce train --resume --out" in line and "'" in line
    state = ckpt.read_checkpoint(run)[1]
    assert int(state["counters"][0]) > 0
