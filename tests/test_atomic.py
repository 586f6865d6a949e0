"""The one writer: files replaced whole or not at all, outputs that never destroy inputs."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from transduce.atomic import (
    atomic_output,
    atomic_write_text,
    pid_space,
    refuse_overwriting_inputs,
    write_output,
)
from transduce.data.corpus import DataError


def test_a_failed_output_leaves_the_previous_file_and_counts_lines(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("previous\n")
    done = r"2 line\(s\) were done; .* left as it was"
    with pytest.raises(DataError, match=done), atomic_output(out) as f:
        f.write("one\ntwo\n")
        raise DataError("in.txt", 3, "too long")
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_full_disk_is_one_line_and_the_old_file_stays(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("previous\n")
    full = "no space left on the device; 1 line"
    with pytest.raises(DataError, match=full), atomic_output(out) as f:
        f.write("one\n")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert out.read_text() == "previous\n"


def test_a_completed_output_replaces_through_a_symlink(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old\n")
    (tmp_path / "link.txt").symlink_to(real)
    with atomic_output(tmp_path / "link.txt") as f:
        f.write("new\n")
    assert (tmp_path / "link.txt").is_symlink() and real.read_text() == "new\n"


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # the reader
        with open(fifo, "rb") as r:
            data = r.read()
        os._exit(0 if data == b"x\n" else 1)
    with atomic_output(fifo) as f:
        f.write("x\n")
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert fifo.exists() and not fifo.is_file()


def test_a_whole_output_writes_through_links_fifos_and_devices(tmp_path):
    """backtest --output, a long table's forecasts and every plot replaced a FIFO, a
    device (/dev/full, as root) or the user's symlink with a regular file."""
    real = tmp_path / "real.json"
    real.write_text("old\n")
    (tmp_path / "link.json").symlink_to(real)
    write_output(tmp_path / "link.json", b"new\n")
    assert (tmp_path / "link.json").is_symlink() and real.read_text() == "new\n"
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # the reader
        with open(fifo, "rb") as r:
            os._exit(0 if r.read() == b"x\n" else 1)
    write_output(fifo, b"x\n")
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert not fifo.is_file()
    write_output("/dev/null", b"x")
    assert not os.path.isfile("/dev/null")
    if os.path.exists("/dev/full"):
        with pytest.raises(DataError, match="no space left on the device"):
            write_output("/dev/full", b"x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="file is a file, not a folder"):
        write_output(tmp_path / "file" / "out.json", b"{}")
    with pytest.raises(DataError, match="is a directory"):
        write_output(tmp_path, b"{}")
    write_output(tmp_path / "new" / "out.json", b"{}")  # a new folder is made
    assert (tmp_path / "new" / "out.json").read_bytes() == b"{}"


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "dotted"])
def test_an_output_that_is_an_input_is_refused(tmp_path, how):
    src = tmp_path / "in.txt"
    src.write_text("keep me\n")
    out = {
        "same": src,
        "symlink": tmp_path / "l.txt",
        "hardlink": tmp_path / "h.txt",
        "dotted": tmp_path / "." / "in.txt",
    }[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    with pytest.raises(DataError, match="is the input"):
        refuse_overwriting_inputs(out, [src])
    assert src.read_text() == "keep me\n"


def test_atomic_write_replaces_whole_and_never_through_a_link(tmp_path):
    atomic_write_text(tmp_path / "a" / "f.json", "{}")
    assert (tmp_path / "a" / "f.json").read_text() == "{}"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["f.json"]
    mine = tmp_path / "mine.yaml"
    mine.write_text("a user's config")
    (tmp_path / "a" / "config.yaml").symlink_to(mine)
    atomic_write_text(tmp_path / "a" / "config.yaml", "resolved")
    assert mine.read_text() == "a user's config"
    assert (tmp_path / "a" / "config.yaml").read_text() == "resolved"


KILLED_OUTPUT = """
import os, signal, sys
from transduce.atomic import atomic_output
with atomic_output(sys.argv[1]) as out:
    out.write("half of it\\n")
    out.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_next_write_removes_what_a_killed_one_left_and_nothing_else(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("before\n")
    killed = subprocess.Popen([sys.executable, "-c", KILLED_OUTPUT, str(target)])
    assert killed.wait(60) == -signal.SIGKILL
    here = pid_space()
    (left,) = tmp_path.glob(f".out.txt.{killed.pid}@{here}.*.tmp")
    assert left.read_text() == "half of it\n" and target.read_text() == "before\n"
    live = tmp_path / f".out.txt.1@{here}.0123abcd.tmp"  # pid 1 runs: a writer at work
    live.write_text("someone's")
    crafted = tmp_path / f".out.txt.{10**20}@{here}.0123abcd.tmp"  # no pid is that large
    crafted.write_text("?")
    other = tmp_path / f".other.txt.{killed.pid}@{here}.0123abcd.tmp"  # another output's
    other.write_text("theirs")
    # the same dead pid, written from another host or container on a shared folder: its
    # writer may be at work there, whatever runs here
    there = "0" * 8 if here != "0" * 8 else "1" * 8
    elsewhere = tmp_path / f".out.txt.{killed.pid}@{there}.0123abcd.tmp"
    elsewhere.write_text("another host's")
    with atomic_output(target) as out:
        out.write("after\n")
    assert target.read_text() == "after\n" and not left.exists()
    assert live.read_text() == "someone's" and other.read_text() == "theirs"
    assert elsewhere.read_text() == "another host's"
    names = ["out.txt", live.name, other.name, crafted.name, elsewhere.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)


def test_every_process_of_this_host_and_pid_namespace_names_the_same_pid_space():
    child = subprocess.run(
        [sys.executable, "-c", "from transduce.atomic import pid_space; print(pid_space())"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == pid_space() and len(pid_space()) == 8


STDIN_CHECK = """
import sys
from transduce.atomic import refuse_overwriting_inputs
from transduce.errors import DataError
try:
    refuse_overwriting_inputs(sys.argv[1], [None])
except DataError as err:
    print(err)
"""


def test_an_output_that_is_the_file_on_standard_input_is_refused(tmp_path):
    # `transduce translate --output F < F` read F while it replaced it: the lines were lost
    source = tmp_path / "in.txt"
    source.write_text("the only copy\n")
    (tmp_path / "hard").hardlink_to(source)
    for output, refused in ((source, True), (tmp_path / "hard", True), (tmp_path / "o", False)):
        with open(source, "rb") as stdin:
            got = subprocess.run(
                [sys.executable, "-c", STDIN_CHECK, str(output)],
                stdin=stdin,
                capture_output=True,
                text=True,
                check=True,
            )
        assert ("is the file the standard input reads" in got.stdout) is refused, got.stdout
    assert source.read_text() == "the only copy\n"


def test_a_whole_file_write_removes_what_a_killed_one_left(tmp_path):
    # only streamed outputs did: a table forecast, a backtest's JSON kept them for ever
    from transduce.atomic import atomic_write_bytes

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    left = tmp_path / f".bt.json.{int(gone.stdout)}@{pid_space()}.0123abcd.tmp"
    left.write_text("half")
    atomic_write_bytes(tmp_path / "bt.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bt.json"]
