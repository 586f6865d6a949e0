"""SIGINT/SIGTERM inside training: the first asks to stop, a second SIGINT stops at once."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import tiny_reverse_run
from transduce.engine import interrupt
from transduce.signals import Terminated


def test_first_signal_asks_second_sigint_raises():
    with interrupt.graceful():
        assert interrupt.requested() is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.requested() == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a repeated SIGTERM: still stopping, no raise
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert interrupt.requested() is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    ("sig", "words", "to_file"),
    [
        (signal.SIGTERM, "terminated by SIGTERM", False),
        (signal.SIGINT, "interrupted", False),
        (signal.SIGTERM, "terminated by SIGTERM (", True),
    ],
)
def test_a_signal_while_translate_reads_a_pipe_ends_it_cleanly(tmp_path, sig, words, to_file):
    """``kill`` (a scheduler, ``docker stop``) or Ctrl-C while ``translate`` waits for more
    input: one line says what stopped it, status 128 + the signal, and a temporary output
    is removed, the target not created. (The thread blocked on the pipe made the
    interpreter's shutdown abort, "Fatal Python error", SIGABRT: 7 times in 8 with the
    output on a pipe, 2 in 8 with --output.)"""
    run = tiny_reverse_run(tmp_path)
    out = tmp_path / "out.txt"
    cmd = [sys.executable, "-m", "transduce", "translate", "--model", str(run)]
    cmd += ["--output", str(out)] if to_file else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    proc = subprocess.Popen(cmd, env=env, **pipes)
    proc.stdin.write(b"a b c\n" * 3)
    proc.stdin.flush()  # left open: translate waits for more input, its output begun
    if to_file:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".out.txt*")) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        assert select.select([proc.stdout], [], [], 60)[0], "no translation in 60 s"
        assert proc.stdout.readline().strip()  # the first translation is out
    time.sleep(0.3)
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 128 + sig, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"transduce translate: {words}"), err
    assert "Traceback" not in err and "Fatal" not in err
    assert not [p for p in tmp_path.iterdir() if "out.txt" in p.name]  # no temp, no target


POOL = """
import multiprocessing as mp, os, signal
import transduce.signals as sig
sig._PID = os.getpid()  # as terminating() installs it
signal.signal(signal.SIGTERM, sig._terminate)
for _ in range(5):
    with mp.get_context("fork").Pool(3) as pool:  # its exit SIGTERMs the idle workers
        assert pool.map(abs, range(-6, 0)) == [6, 5, 4, 3, 2, 1]
        assert set(pool.map(signal.getsignal, [signal.SIGTERM] * 3)) == {signal.SIG_DFL}
"""


def test_forked_pool_workers_end_quietly_under_the_clis_sigterm_handler():
    """The handler raised in the pool workers ``prepare`` forks: every prepare with
    --workers 2 printed a traceback per worker as the pool ended them."""
    done = subprocess.run([sys.executable, "-c", POOL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize(
    ("raised", "code", "said"),
    [(KeyboardInterrupt, 130, "interrupted"), (Terminated, 143, "terminated by SIGTERM")],
)
def test_an_interrupt_while_the_parser_is_built_is_one_line(
    monkeypatch, capsys, raised, code, said
):
    """Ctrl-C in the first ~0.2 s (the parser's imports) printed a page of traceback."""
    from transduce.commands import cli

    def interrupted():
        raise raised

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["translate"]) == code
    assert capsys.readouterr().err == f"transduce: {said}\n"
