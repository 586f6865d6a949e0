"""The run directory has one owner: it deletes only entries it created (exact names, links
resolved and kept inside the run), honours pointers a user re-pointed, never follows a
linked ``ckpt/``, and refuses a ``--out`` that holds someone else's files."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import (
    dead_pid,
    metric_rows,
    one_line_error,
    reverse_pairs,
    same_last_weights,
    tiny_config,
    write_tsv,
)
from transduce.commands.cli import main
from transduce.data.corpus import DataError
from transduce.engine import checkpoint as ckpt
from transduce.engine import rundir
from transduce.tasks.train import train


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("owner")
    cfg = tiny_config(write_tsv(tmp / "rev.tsv", reverse_pairs(48, seed=3)), train={"epochs": 1})
    train(cfg, tmp / "run")
    return cfg, tmp / "run"


@pytest.fixture
def run(finished, tmp_path) -> Path:
    shutil.copytree(finished[1], tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def _target(run: Path, pointer: str) -> Path:
    return Path(os.path.realpath(run / pointer))


def _copy_checkpoint(run: Path, step: int = 1) -> Path:
    """A second complete checkpoint of the run (a copy of ``last``'s, under step ``step``)."""
    copy = run / ckpt.CKPT / ckpt.step_dir_name(step)
    shutil.copytree(_target(run, "last"), copy)
    return copy


@pytest.mark.parametrize("pointers", [("last", "best"), ("best",), ("last",)])
def test_pointers_repointed_as_absolute_links_are_honoured(run, pointers):
    copy = _copy_checkpoint(run)
    kept = {p: _target(run, p) for p in ("last", "best")}
    for pointer in pointers:
        (run / pointer).unlink()
        os.symlink(copy, run / pointer)  # absolute, as a user re-points it
        kept[pointer] = copy
    rundir.clean(run)
    assert all(path.is_dir() for path in kept.values())
    result = train(out=run, resume=True, overrides=["train.epochs=2"])
    assert result.steps > 0 and _target(run, "last").is_dir()


def test_a_relative_link_written_another_way_is_honoured(run):
    copy = _copy_checkpoint(run)
    (run / "last").unlink()
    os.symlink(f"../{run.name}/{ckpt.CKPT}/{copy.name}", run / "last")
    rundir.clean(run)
    assert copy.is_dir()


def test_a_pointer_out_of_the_run_prunes_nothing(run, tmp_path):
    _copy_checkpoint(run)
    other = tmp_path / "elsewhere" / "step_000000001"
    shutil.copytree(_target(run, "last"), other)
    before = sorted(p.name for p in (run / ckpt.CKPT).iterdir())
    (run / "last").unlink()
    os.symlink(other, run / "last")
    rundir.clean(run)
    assert sorted(p.name for p in (run / ckpt.CKPT).iterdir()) == before
    assert other.is_dir()


@pytest.mark.parametrize(
    "name", ["notes.txt", "step_1", "step_000000001.bak", ".tmp-mine", ".x.tmp", "step_link"]
)
def test_prune_deletes_only_its_own_names(run, name):
    entry = run / ckpt.CKPT / name
    if name == "step_link":
        entry = run / ckpt.CKPT / "step_000000077"
        os.symlink(run.parent, entry)  # a user's link under one of our names
    elif name.endswith(".txt") or name.endswith(".tmp"):
        entry.write_text("mine")
    else:
        entry.mkdir()
        (entry / "keep.txt").write_text("mine")
    ckpt.prune(run)
    assert entry.is_symlink() or entry.exists()
    assert run.parent.is_dir()


@pytest.mark.parametrize("where", ["shared", "dot"])
def test_a_linked_ckpt_is_never_followed(run, tmp_path, where):
    shared = tmp_path / "shared"
    if where == "shared":
        shared.mkdir()
        (shared / "notes.txt").write_text("a user's notes")
        (shared / "step_000000005").mkdir()  # another run's checkpoint
        link_to = shared
    else:
        link_to = Path(".")
    shutil.rmtree(run / ckpt.CKPT)
    os.symlink(link_to, run / ckpt.CKPT)
    assert ckpt.prune(run) == []
    with pytest.raises(DataError, match="is a symbolic link"):
        train(out=run, resume=True, overrides=["train.epochs=2"])
    if where == "shared":
        assert (shared / "notes.txt").is_file() and (shared / "step_000000005").is_dir()
    assert (run / "metrics.jsonl").is_file() and (run / "last").is_symlink()


def test_fresh_train_in_a_folder_with_foreign_ckpt_and_tmp_deletes_nothing(finished, tmp_path):
    out = tmp_path / "D"
    (out / "ckpt" / "step_000000003").mkdir(parents=True)
    (out / "ckpt" / "step_000000003" / "data.bin").write_bytes(b"someone's")
    (out / ".x.tmp").write_text("someone's")
    with pytest.raises(FileExistsError, match=r"not a transduce run \(it holds .x.tmp, ckpt\)"):
        train(finished[0], out)
    assert (out / "ckpt" / "step_000000003" / "data.bin").is_file()
    assert (out / ".x.tmp").is_file()


def test_a_config_yaml_that_is_not_a_runs_is_never_overwritten(finished, tmp_path, capsys):
    # a folder holding another tool's config.yaml (or the CONFIG itself) was taken for a run
    # killed before its first checkpoint: the file was replaced by the resolved config
    other = tmp_path / "proj"
    other.mkdir()
    (other / "config.yaml").write_text("some_other_tool:\n  setting: 1\n")
    (other / "important.csv").write_text("data\n")
    with pytest.raises(FileExistsError, match=r"its config\.yaml is not one a run writes"):
        train(finished[0], other)
    assert (other / "config.yaml").read_text() == "some_other_tool:\n  setting: 1\n"
    from transduce.config import save_config

    own = tmp_path / "exp"
    own.mkdir()
    save_config(finished[0], own / "config.yaml")  # the CONFIG, kept in its run's folder
    before = (own / "config.yaml").read_bytes()
    assert main(["train", str(own / "config.yaml"), "--out", str(own)]) == 2
    assert "the output would destroy it" in capsys.readouterr().err
    assert (own / "config.yaml").read_bytes() == before and sorted(os.listdir(own)) == [
        "config.yaml"
    ]


@pytest.mark.parametrize("name", ["config.yaml", "metrics.jsonl", "vocab.src.json"])
def test_a_users_file_named_as_a_runs_first_files_is_kept(finished, tmp_path, name):
    """A folder holding only a user's config.yaml (with comments), metrics.jsonl or
    vocab.src.json passed for a run killed before its first checkpoint, and the file was
    replaced. A run's start writes its lock file first: without it, it is not a run's."""
    from transduce.config import save_config

    folder = tmp_path / "mine"
    folder.mkdir()
    if name == "config.yaml":
        save_config(finished[0], folder / name)
        (folder / name).write_text("# my settings\n" + (folder / name).read_text())
    else:
        (folder / name).write_text('{"mine": "precious"}\n')
    before = (folder / name).read_bytes()
    with pytest.raises(FileExistsError, match="not empty and not a transduce run"):
        train(finished[0], folder)
    assert (folder / name).read_bytes() == before and os.listdir(folder) == [name]


def test_resume_says_so_when_a_config_given_is_not_used(run, tmp_path, caplog):
    from transduce.config import load_config, save_config

    cfg = load_config(run / "config.yaml", ["train.lr=0.05", "train.epochs=1"])
    save_config(cfg, tmp_path / "other.yaml")
    with caplog.at_level(logging.WARNING, logger="transduce"):
        assert main(["train", str(tmp_path / "other.yaml"), "--out", str(run), "--resume"]) == 0
    assert "resumes with its own config.yaml" in caplog.text and "train.lr" in caplog.text


def test_clean_leaves_tmp_names_it_did_not_make(run):
    foreign = [run / ".notes.tmp", run / ".config.yaml.tmp", run / ".a.b.c.tmp"]
    for path in foreign:
        path.write_text("mine")
    import subprocess
    import sys

    from transduce.atomic import pid_space

    gone = dead_pid()
    ours = run / f".config.yaml.{gone}@{pid_space()}.0123abcd.tmp"  # a killed write's
    older = run / f".config.yaml.{gone}.0123abcd.tmp"  # named before pid spaces
    # a live writer's (`transduce average` while a resume starts: it holds no run lock)
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = run / "averaged" / f".model.safetensors.{writer.pid}@{pid_space()}.0123abcd.tmp"
        live.parent.mkdir(exist_ok=True)
        for path in (ours, older, live):
            path.write_text("half")
        rundir.clean(run)
        assert all(p.is_file() for p in foreign) and not ours.exists() and not older.exists()
        assert live.read_text() == "half"
    finally:
        writer.kill()
        writer.wait()


def test_resume_of_a_job_killed_before_anything_starts_afresh(finished, tmp_path, caplog):
    """A requeued job always passes --resume: DIR missing or empty starts from CONFIG."""
    config = tmp_path / "c.yaml"
    from transduce.config import save_config

    save_config(finished[0], config)
    out = tmp_path / "job"
    out.mkdir()
    with caplog.at_level(logging.WARNING, logger="transduce.tasks.train"):
        assert main(["train", str(config), "--out", str(out), "--resume"]) == 0
    assert "no checkpoint to resume" in caplog.text and "starting afresh" in caplog.text
    assert rundir.has_checkpoint(out)
    assert main(["train", str(config), "--out", str(out), "--resume"]) == 0  # resumes now


def test_a_failed_start_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TRANSDUCE_DATA", str(tmp_path / "nodata"))
    out = tmp_path / "r"
    assert main(["train", "multi30k_de_en_rnn", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "transduce data get multi30k" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    out.mkdir()  # a folder the user made stays
    assert main(["train", "multi30k_de_en_rnn", "--out", str(out)]) == 2
    assert out.is_dir()


@pytest.fixture(scope="module")
def keeping(tmp_path_factory) -> Path:
    """A finished run that keeps its last two validation weights (checkpoints/)."""
    tmp = tmp_path_factory.mktemp("keeping")
    tsv = write_tsv(tmp / "rev.tsv", reverse_pairs(48, seed=3))
    train(tiny_config(tsv, train={"epochs": 2, "keep_checkpoints": 2}), tmp / "run")
    return tmp / "run"


def test_kept_checkpoints_in_a_linked_folder_are_never_trimmed(keeping, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(keeping, run, symlinks=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "step_000000003.safetensors").write_text("a user's file")
    shutil.rmtree(run / "checkpoints")
    os.symlink(mine, run / "checkpoints")
    with pytest.raises(DataError, match=r"checkpoints: is a symbolic link"):
        train(out=run, resume=True, overrides=["train.epochs=4"])
    assert (mine / "step_000000003.safetensors").read_text() == "a user's file"
    assert sorted(p.name for p in mine.iterdir()) == ["step_000000003.safetensors"]


def test_average_never_writes_through_a_linked_averaged_folder(keeping, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(keeping, run, symlinks=True)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_text("a user's file")
    os.symlink(mine, run / "averaged")
    err = one_line_error(capsys, ["average", "--model", str(run), "--last", "2"])
    assert "averaged: is a symbolic link" in err
    assert sorted(p.name for p in mine.iterdir()) == ["model.safetensors"]
    assert (mine / "model.safetensors").read_text() == "a user's file"
    os.unlink(run / "averaged")  # the run's own folder is written as before
    assert main(["average", "--model", str(run), "--last", "2"]) == 0
    assert (run / "averaged" / "model.safetensors").is_file()


def test_a_run_that_lost_its_links_resumes_from_its_newest_checkpoint(finished, tmp_path, caplog):
    """A copy that skipped symlinks (no last, best, model.safetensors) resumed afresh and
    deleted its complete checkpoint as a leftover."""
    intact, bare = tmp_path / "intact", tmp_path / "bare"
    for copy in (intact, bare):
        shutil.copytree(finished[1], copy, symlinks=True)
    for name in ("last", "best", "model.safetensors"):
        (bare / name).unlink()
    with caplog.at_level(logging.INFO, logger="transduce.tasks.train"):
        result = train(out=bare, resume=True, overrides=["train.epochs=2"])
    assert "afresh" not in caplog.text and "leftover" not in caplog.text
    assert "`last` was missing" in caplog.text
    train(out=intact, resume=True, overrides=["train.epochs=2"])
    assert same_last_weights(intact, bare) and metric_rows(intact) == metric_rows(bare)
    assert result.steps > 0 and (bare / "model.safetensors").is_file()


def test_lost_links_and_no_complete_checkpoint_delete_nothing(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished[1], run, symlinks=True)
    step = _target(run, "last")
    for name in ("last", "best", "model.safetensors"):
        (run / name).unlink()
    (step / "trainer_state.pt").write_bytes(b"cut short")
    with pytest.raises(DataError, match="last: is missing and no checkpoint"):
        train(out=run, resume=True, overrides=["train.epochs=2"])
    assert (step / "trainer_state.pt").read_bytes() == b"cut short"
    assert (step / "model.safetensors").is_file()


@pytest.mark.parametrize("lose", ["last", "meta.json"])
def test_an_edited_config_is_refused_even_with_last_or_its_meta_lost(run, lose, capsys):
    # the check read `last/meta.json` before `last` was linked again (or with meta.json
    # gone found nothing): the resume trained on with the edited learning rate
    text = (run / "config.yaml").read_text()
    lr = next(line for line in text.splitlines() if line.strip().startswith("lr:"))
    (run / "config.yaml").write_text(text.replace(lr, "  lr: 0.123"))
    if lose == "last":
        (run / "last").unlink()
    else:
        (run / "last" / "meta.json").unlink()
    assert main(["train", "--out", str(run), "--resume", "--set", "train.epochs=3"]) == 2
    assert "train.lr" in capsys.readouterr().err


def test_translate_never_replaces_the_runs_training_data(finished, tmp_path, capsys):
    cfg, run = finished
    data = Path(cfg.data.train)
    before = data.read_bytes()
    (tmp_path / "in.txt").write_text("abc\n")
    args = ["translate", "--model", str(run), "--input", str(tmp_path / "in.txt")]
    assert main([*args, "--output", str(data)]) == 2
    assert "is the input" in capsys.readouterr().err and data.read_bytes() == before


def test_a_plain_last_folder_never_moves_files_through_a_linked_step(run, tmp_path):
    """An old-style run (last/ a folder) is migrated into ckpt/step_N on resume: a link
    there took the checkpoint's files out of the run, then last/ was deleted."""
    from transduce.engine import checkpoint as ckpt
    from transduce.engine import rundir

    target = _target(run, "last")
    (run / "last").unlink()
    shutil.copytree(target, run / "last")  # last/ as a plain folder, as before pointers
    shutil.rmtree(target)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine")
    (run / ckpt.CKPT / target.name).symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match="is a symbolic link"):
        rundir.clean(run)
    assert sorted(os.listdir(outside)) == ["notes.txt"] and (run / "last").is_dir()


def test_an_out_under_a_file_is_one_line(finished, tmp_path, capsys):
    """--out in.txt/x: NotADirectoryError's traceback (train, demo, generate, backtest
    --refit), or the system's raw '[Errno 17] File exists' (prepare)."""
    from transduce.config import save_config

    save_config(finished[0], tmp_path / "cfg.yaml")
    (tmp_path / "in.txt").write_text("x\n")
    for command in (["train", str(tmp_path / "cfg.yaml")], ["prepare", str(tmp_path / "cfg.yaml")]):
        assert main([*command, "--out", str(tmp_path / "in.txt" / "x")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "in.txt" in err and "Errno" not in err, err
    assert (tmp_path / "in.txt").read_text() == "x\n"
