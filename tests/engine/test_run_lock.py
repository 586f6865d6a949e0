"""One process trains into a run at a time: a second ``train`` or ``--resume`` into a run
being trained is one line, not interleaved checkpoints; a ``kill -9`` frees the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.config import save_config
from transduce.errors import DataError
from transduce.tasks.train import train


def test_a_second_trainer_is_refused_while_the_first_runs_and_a_kill_frees_the_run(
    tmp_path, capsys
):
    tsv = write_tsv(tmp_path / "pairs.tsv", reverse_pairs(200, seed=3))
    cfg = tiny_config(tsv, train={"epochs": 100000, "valid_every": 20})
    save_config(cfg, tmp_path / "cfg.yaml")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "transduce", "train", str(tmp_path / "cfg.yaml")]
    cmd += ["--out", str(run)]
    first = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (run / "last").exists():  # training, with a checkpoint written
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert (run / ".lock").read_text().strip() == str(first.pid)
        before = sorted(p.name for p in run.iterdir())
        with pytest.raises(FileExistsError, match=f"another transduce process \\(pid {first.pid}"):
            train(out=run, resume=True)
        assert main(["train", "--resume", "--out", str(run)]) == 2
        err = capsys.readouterr().err.strip()
        assert f"pid {first.pid}) is training into this run" in err and "\n" not in err
        assert (run / ".lock").read_text().strip() == str(first.pid)  # its lock, untouched
        assert {"config.yaml", "ckpt", "last"} <= set(before)
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
    result = train(out=run, resume=True, overrides=["train.max_steps=60"])  # the run is free
    assert result.steps == 60
    assert (run / ".lock").read_text().strip() == str(os.getpid())


def test_a_refused_foreign_folder_keeps_no_lock(tmp_path):
    tsv = write_tsv(tmp_path / "pairs.tsv", reverse_pairs(40, seed=3))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty and not a transduce run"):
        train(tiny_config(tsv), mine)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    with pytest.raises(DataError, match="file not found"):
        train(tiny_config(tsv, data={"train": str(tmp_path / "missing.tsv")}), tmp_path / "new")
    assert not (tmp_path / "new").exists()  # made for the lock, removed with it
