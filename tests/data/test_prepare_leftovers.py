"""A prepare killed outright (SIGKILL just before its store is renamed into place) leaves its
temporary folder; the next prepare of that store removes it, and only what is its own. Two
prepares of one store at once: the second to finish uses the first one's store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import reverse_pairs, write_tsv
from transduce.atomic import pid_space
from transduce.config import DataConfig, from_dict
from transduce.data.prepare import prepare

KILLED = """
import os, signal, sys
import transduce.data.prepare as p
from transduce.config import DataConfig, from_dict
p.finish = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # every file written, not renamed
p.prepare(from_dict(DataConfig, {"train": sys.argv[1]}), sys.argv[2], progress=False)
"""


def test_the_next_prepare_removes_what_a_killed_one_left_and_nothing_else(tmp_path):
    train_tsv = write_tsv(tmp_path / "train.tsv", reverse_pairs(300, seed=2))
    out = tmp_path / "stores" / "store"
    done = subprocess.Popen([sys.executable, "-c", KILLED, str(train_tsv), str(out)])
    assert done.wait(120) == -9
    here = pid_space()
    (left,) = out.parent.glob(f".store.tmp-{done.pid}@{here}.*")
    assert left.is_dir() and any(left.iterdir()) and not out.exists()
    there = "0" * 8 if here != "0" * 8 else "1" * 8  # another host's or container's
    elsewhere_pid = out.parent / f".store.tmp-{done.pid}@{there}.0123abcd"
    elsewhere_pid.mkdir()
    live = out.parent / f".store.tmp-1@{here}.0123abcd"  # pid 1 runs: another prepare's
    live.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("not ours")
    # named like ours, but a link
    link = out.parent / f".store.tmp-{done.pid + 1000000}@{here}.0123abcd"
    link.symlink_to(elsewhere, target_is_directory=True)
    other = out.parent / f".other.tmp-{done.pid}@{here}.0123abcd"  # another store's
    other.mkdir()

    store = prepare(from_dict(DataConfig, {"train": str(train_tsv)}), out, progress=False)
    assert store.path == out and (out / "manifest.json").is_file()
    assert not left.exists() and elsewhere_pid.is_dir()
    assert live.is_dir() and link.is_symlink() and other.is_dir()
    assert (elsewhere / "keep.txt").read_text() == "not ours"
    assert sorted(p.name for p in out.parent.iterdir()) == sorted(
        ["store", live.name, link.name, other.name, elsewhere_pid.name]
    )
    assert os.path.realpath(link) == str(Path(elsewhere).resolve())


def test_a_store_prepared_meanwhile_by_another_process_is_used(tmp_path, monkeypatch):
    import transduce.data.prepare as p
    import transduce.locks

    monkeypatch.setattr(transduce.locks, "fcntl", None)  # no locks here (some network mounts)
    cfg = from_dict(DataConfig, {"train": str(write_tsv(tmp_path / "t.tsv", reverse_pairs(80)))})
    out = tmp_path / "store"
    finish = p.finish

    def racing(tmp, where, manifest):  # the other prepare renames its store first
        monkeypatch.setattr(p, "finish", finish)
        first = prepare(cfg, where, progress=False)
        assert first.path == where and tmp.is_dir()  # ours, in progress, left alone
        finish(tmp, where, manifest)  # then ours: the folder is there, not empty

    monkeypatch.setattr(p, "finish", racing)
    store = prepare(cfg, out, progress=False)
    assert store.path == out and (out / "manifest.json").is_file()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["store", "t.tsv"]  # no tmp left
