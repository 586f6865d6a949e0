"""``transduce.locks.exclusive``: a second process waits for the first (saying for whom),
then holds the lock; the lock file goes with its holder; a link is refused. And two
``transduce prepare`` of one store at once build it once: the second waits, then uses it."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
import time

import pytest

from tests.helpers import write_tsv
from transduce.errors import DataError
from transduce.locks import exclusive

HOLD = """
import sys, time
from pathlib import Path
from transduce.locks import exclusive
with exclusive(Path(sys.argv[1]), "test"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_holder_waits_for_the_first_and_says_for_whom(tmp_path, capfd):
    path = tmp_path / ".work.lock"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline().strip() == "held"
        start = time.monotonic()
        with exclusive(path, "doing it"):
            waited = time.monotonic() - start
            assert path.read_text() == f"{os.getpid()}\n"
        assert waited > 0.5 and first.wait(30) == 0
        assert f"doing it: waiting for pid {first.pid}" in capfd.readouterr().err
        assert not path.exists()  # removed by its holder
    finally:
        first.kill()
        first.wait()


def test_a_killed_holder_frees_the_lock_and_a_link_is_refused(tmp_path):
    path = tmp_path / ".work.lock"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "60"], stdout=subprocess.PIPE, text=True
    )
    assert first.stdout.readline().strip() == "held"
    first.kill()  # SIGKILL: the kernel drops its lock; its file stays
    first.wait()
    with exclusive(path, "after a kill"):
        assert path.read_text() == f"{os.getpid()}\n"
    target = tmp_path / "someone's.txt"
    target.write_text("theirs")
    path.symlink_to(target)
    with pytest.raises(DataError, match="is a link"), exclusive(path, "a link"):
        pass
    assert target.read_text() == "theirs" and path.is_symlink()


def test_a_fifo_or_a_folder_at_the_locks_name_is_one_line(tmp_path):
    # a FIFO there was a traceback (ftruncate: Invalid argument); a folder blamed the parent
    os.mkfifo(tmp_path / ".a.lock")
    with (
        pytest.raises(DataError, match="is not a regular file"),
        exclusive(tmp_path / ".a.lock", "fifo"),
    ):
        pass
    (tmp_path / ".b.lock").mkdir()
    with (
        pytest.raises(DataError, match=r"\.b\.lock: is a folder"),
        exclusive(tmp_path / ".b.lock", "folder"),
    ):
        pass


CONFIG = """
data:
  format: tsv
  train: {train}
  src_tokenizer: char
  tgt_tokenizer: char
"""


def test_two_prepares_of_one_store_at_once_build_it_once(tmp_path):
    rng = random.Random(3)
    pairs = [
        ("".join(rng.choices(string.ascii_lowercase + " ", k=60)), str(i)) for i in range(150_000)
    ]
    train = write_tsv(tmp_path / "train.tsv", pairs)
    (tmp_path / "c.yaml").write_text(CONFIG.format(train=train), encoding="utf-8")
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "transduce", "prepare", str(tmp_path / "c.yaml")]
    cmd += ["--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)]
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".store.tmp-*")):  # the first is building
        assert time.monotonic() < deadline and procs[0].poll() is None
        time.sleep(0.02)
    procs.append(subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env))
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert f"building it: waiting for pid {procs[0].pid}" in errs[1]
    assert "already prepared" in errs[1]  # the first one's store, not a second build
    assert (out / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "store", "train.tsv"]
