"""The demo end to end on a smaller budget: data, training, held-out test, picture."""

import os
from pathlib import Path

import pytest

from tests.helpers import dead_pid
from transduce import folderswap
from transduce.commands import demo
from transduce.commands.demo import run_demo


def test_demo_learns_dates_and_draws(tmp_path, capsys):
    summary = run_demo(
        tmp_path / "demo",
        n_train=3000,
        n_test=300,
        overrides={"train": {"epochs": 3, "progress": False, "valid_max": 200}},
    )
    out = capsys.readouterr().out
    assert "held-out exact match:" in out and "(n=300)" in out
    # A fraction of the real demo's data and steps already gets most dates right.
    assert summary["exact"] >= 0.5, summary
    png = tmp_path / "demo" / "attention.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "demo" / "run" / "model.safetensors").is_file()


# ------------------------------------------------------------ the demo's own folder


@pytest.mark.parametrize("content", ["notes.txt", "some_run/config.yaml", "data/mine.tsv"])
def test_a_folder_with_foreign_content_is_refused_and_kept(tmp_path, content):
    out = tmp_path / "mine"
    (out / content).parent.mkdir(parents=True, exist_ok=True)
    (out / content).write_text("a user's file")
    with pytest.raises(FileExistsError, match="not empty and not a demo folder"):
        run_demo(out, n_train=50, n_test=10)
    assert (out / content).read_text() == "a user's file"


def test_the_working_directory_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("README.md").write_text("a checkout")
    with pytest.raises(FileExistsError, match="not a demo folder"):
        run_demo(".", n_train=50, n_test=10)
    assert Path("README.md").is_file()


def _old_demo(out: Path) -> None:
    """A demo folder as an earlier demo left it, with a second run beside."""
    for name in (
        "data/train.tsv",
        "run/config.yaml",
        "run/model.safetensors",
        "run2/config.yaml",
        "run2/model.safetensors",
    ):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(name)
    (out / demo.MARKER).write_text("")


def test_a_users_project_with_a_run_beside_its_data_is_refused(tmp_path):
    """data/train.tsv beside run/config.yaml passed for a demo folder from before
    markers: the demo overwrote the user's data and replaced their run."""
    out = tmp_path / "project"
    _old_demo(out)
    (out / demo.MARKER).unlink()
    with pytest.raises(FileExistsError, match="not a demo folder"):
        run_demo(out, n_train=50, n_test=10)
    assert (out / "data" / "train.tsv").read_text() == "data/train.tsv"
    assert (out / "run" / "config.yaml").read_text() == "run/config.yaml"
    assert not (out / demo.MARKER).exists()


def test_a_rerun_replaces_only_its_own_entries(tmp_path):
    out = tmp_path / "demo"
    _old_demo(out)
    demo.prepare_out(out)
    new = out / f".run.{os.getpid()}.tmp"
    new.mkdir()
    (new / "model.safetensors").write_text("new weights")
    demo._install_run(out, new)
    assert (out / "run" / "model.safetensors").read_text() == "new weights"
    assert (out / "run2" / "model.safetensors").read_text() == "run2/model.safetensors"
    assert sorted(p.name for p in out.iterdir()) == [".transduce-demo", "data", "run", "run2"]


def test_an_interrupted_swap_puts_the_old_run_back(tmp_path):
    out = tmp_path / "demo"
    _old_demo(out)
    (out / demo.MARKER).write_text("")  # a folder this demo version made
    a, b = dead_pid(), dead_pid()
    os.replace(out / "run", out / f".run.{a}.tmp")  # killed mid-training: a half run
    (out / f".run.old.{b}.tmp").mkdir()
    (out / f".run.old.{b}.tmp" / "model.safetensors").write_text("old weights")
    demo.prepare_out(out)
    assert (out / "run" / "model.safetensors").read_text() == "old weights"
    assert not (out / f".run.{a}.tmp").exists()


def test_a_live_demos_run_is_left_alone(tmp_path):
    """A second demo into the same folder removed the run the first was training."""
    out = tmp_path / "demo"
    _old_demo(out)
    (out / demo.MARKER).write_text("")
    live = out / f".run.{os.getppid()}.tmp"  # a process that runs
    live.mkdir()
    demo.prepare_out(out)
    assert live.is_dir()


def test_a_kill_between_the_fallback_renames_keeps_the_old_run(tmp_path, monkeypatch):
    """Where names cannot be exchanged in one step, the old run is set aside, then the new
    one renamed in: a kill between the two leaves no run, and the next demo puts the old
    one back."""
    out = tmp_path / "demo"
    _old_demo(out)
    (out / demo.MARKER).write_text("")
    new = out / f".run.{os.getpid()}.tmp"
    new.mkdir()
    monkeypatch.setattr(folderswap, "exchange", lambda a, b: False)
    real = os.replace
    calls = []

    def killed_at_the_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed here
        real(src, dst)

    monkeypatch.setattr(folderswap.os, "replace", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        demo._install_run(out, new)
    monkeypatch.setattr(folderswap.os, "replace", real)
    assert not (out / "run").exists()
    aside = calls[0]
    os.rename(aside, aside.with_name(aside.name.replace(f".{os.getpid()}@", f".{dead_pid()}@")))
    demo.prepare_out(out)
    assert (out / "run" / "model.safetensors").read_text() == "run/model.safetensors"
    assert not [p for p in out.iterdir() if p.name.startswith(".run.previous")]
