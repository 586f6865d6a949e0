"""The run directory at start and resume: leftovers removed, incompatible configs refused
by key, a cut metrics line dropped with a note, a run with no checkpoint started afresh."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import (
    dead_pid,
    metric_rows,
    reverse_pairs,
    same_last_weights,
    tiny_config,
    write_tsv,
)
from transduce.config import ConfigError
from transduce.data.corpus import DataError
from transduce.engine import rundir
from transduce.tasks.train import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished 2-epoch run, copied by each test that resumes it."""
    tmp = tmp_path_factory.mktemp("rundir")
    cfg = tiny_config(write_tsv(tmp / "rev.tsv", reverse_pairs(64, seed=2)))
    train(cfg, tmp / "full")
    return cfg, tmp


@pytest.fixture
def half(runs, tmp_path) -> Path:
    shutil.copytree(runs[1] / "full", tmp_path / "run", symlinks=True)
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.cell=lstm", "model.cell"),
        ("data.lowercase=true", "data.lowercase"),
        ("train.lr=0.5", "train.lr"),
        ("model.decoder.hidden_size=8", "model.decoder.hidden_size"),
    ],
)
def test_resume_refuses_model_data_and_trajectory_changes(half, override, key):
    with pytest.raises(ConfigError, match=rf"cannot change {key} "):
        train(out=half, resume=True, overrides=[override])


def test_resume_refuses_a_config_yaml_edited_since_the_last_checkpoint(half):
    """The last checkpoint records the config it was trained with: a config.yaml edited by
    hand in a key that fixes the run is refused by name; a listed train key may change."""
    text = (half / "config.yaml").read_text()
    edited = text.replace("lr: ", "lr: 0.5  # was ", 1)
    assert edited != text
    (half / "config.yaml").write_text(edited)
    with pytest.raises(ConfigError, match=r"config.yaml: train.lr .* changed since the last"):
        train(out=half, resume=True)
    (half / "config.yaml").write_text(text.replace("epochs: 2", "epochs: 3", 1))
    assert train(out=half, resume=True).steps == 12


def test_resume_accepts_the_listed_train_keys(half):
    result = train(
        out=half,
        resume=True,
        overrides=["train.epochs=3", "train.patience=5", "train.max_seconds=600"],
    )
    assert result.steps == 12


def test_leftovers_are_removed_at_resume(half):
    gone = dead_pid()
    (half / f".config.yaml.{gone}.abcd0123.tmp").write_bytes(b"half a conf")  # writer dead
    (half / "ckpt" / ".tmp-step_000000009.1.ab12cd34").mkdir()
    (half / "ckpt" / ".tmp-step_000000009.1.ab12cd34" / "model.safetensors").write_bytes(b"x")
    (half / "ckpt" / "step_000000002").mkdir()  # a complete checkpoint no pointer holds
    (half / "checkpoints").mkdir(exist_ok=True)
    (half / "checkpoints" / f".step_000000009.safetensors.{gone}.ab12cd34.tmp").write_bytes(b"x")
    train(out=half, resume=True, overrides=["train.epochs=3"])
    names = [p.name for p in half.rglob("*")]
    assert [n for n in names if n.startswith(".")] == [".lock"]  # the run's lock (rundir.py)
    held = {os.readlink(half / "last"), os.readlink(half / "best")}
    assert {f"ckpt/{p.name}" for p in (half / "ckpt").iterdir()} == held


def test_cut_last_metrics_line_is_dropped_with_a_note(half, caplog):
    with open(half / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 9, "epoch": 2, "split": "val')  # a full disk cut this line
    with caplog.at_level(logging.WARNING, logger="transduce.tasks.train"):
        train(out=half, resume=True, overrides=["train.epochs=3"])
    assert "dropped a cut last line" in caplog.text
    assert all(isinstance(r["step"], int) for r in metric_rows(half))


def test_a_bad_metrics_line_inside_names_its_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: not a JSON"):
        rundir.truncate_metrics(path, 5)


def test_resume_without_a_checkpoint_starts_afresh(runs, tmp_path, caplog):
    """Killed before its first checkpoint: config.yaml and vocabularies only."""
    tmp = runs[1]
    shutil.copytree(tmp / "full", tmp_path / "run", symlinks=True)
    run = tmp_path / "run"
    for name in ("last", "best", "model.safetensors"):
        (run / name).unlink()
    shutil.rmtree(run / "ckpt")
    with caplog.at_level(logging.WARNING, logger="transduce.tasks.train"):
        train(out=run, resume=True)
    assert "starting the run afresh" in caplog.text
    assert same_last_weights(run, tmp / "full")
    assert metric_rows(run) == metric_rows(tmp / "full")


def test_new_train_into_a_run_with_a_checkpoint_is_refused(runs, half):
    with pytest.raises(FileExistsError, match="--resume"):
        train(runs[0], half)


def test_a_dangling_last_is_refused_not_restarted(half):
    target = (half / "last").resolve()
    shutil.rmtree(target)
    with pytest.raises(DataError, match="holds no complete checkpoint"):
        train(out=half, resume=True)


@pytest.mark.parametrize("damage", ["flip", "remove"])
def test_a_damaged_best_behind_last_is_forgotten_loudly_at_resume(tmp_path, caplog, damage):
    """lr 1.0 diverges: best stays at step 8 while last moves to 12. A best damaged since
    (bit rot) or removed by hand would have ended the run on weights no command loads."""
    cfg = tiny_config(
        write_tsv(tmp_path / "rev.tsv", reverse_pairs(64, seed=4)), train={"epochs": 3, "lr": 1.0}
    )
    run = tmp_path / "run"
    train(cfg, run)
    best, last = (Path(os.path.realpath(run / p)) for p in ("best", "last"))
    assert best != last
    if damage == "flip":
        weights = best / "model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-3] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        shutil.rmtree(best)
    with caplog.at_level(logging.WARNING, logger="transduce.tasks.train"):
        train(out=run, resume=True, overrides=["train.epochs=4"])
    assert f"best checkpoint (step {int(best.name[5:])}) is forgotten" in caplog.text
    new_best = Path(os.path.realpath(run / "best"))
    assert new_best.name == "step_000000016" and not best.exists()  # the 4th validation's
    rundir.ckpt.verify_unit(new_best)
    rundir.ckpt.read_weights(run / "model.safetensors")
