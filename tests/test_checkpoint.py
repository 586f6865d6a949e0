"""Checkpoint directories and damaged run artifacts: every damaged file is one line naming
it (exit code 2), a mix of two checkpoints is refused, and the best model is never touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.data.corpus import DataError
from transduce.engine import averaging
from transduce.engine import checkpoint as ckpt
from transduce.tasks.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ckpt")
    tsv = write_tsv(tmp / "rev.tsv", reverse_pairs(64, seed=5))
    cfg = tiny_config(tsv, train={"epochs": 2, "keep_checkpoints": 2})
    train(cfg, tmp / "run")
    (tmp / "in.txt").write_text("abc\ncab\n", encoding="utf-8")
    return tmp / "run"


@pytest.fixture
def copy(run, tmp_path) -> Path:
    shutil.copytree(run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def _error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _translate(run: Path) -> list[str]:
    return ["translate", "--model", str(run), "--input", str(run.parent / "in.txt")]


def test_layout_pointers_and_meta(run):
    assert os.readlink(run / "last") == "ckpt/step_000000008"
    assert (run / "best").is_symlink() and (run / "model.safetensors").is_symlink()
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == sorted(
        {Path(os.readlink(run / "last")).name, Path(os.readlink(run / "best")).name}
    )
    last, state = ckpt.read_checkpoint(run)
    assert int(state["counters"][0]) == 8 and (last / "meta.json").exists()


@pytest.mark.parametrize("size", [0, 100])
def test_truncated_best_weights(copy, capsys, size):
    target = copy / "model.safetensors"
    data = target.read_bytes()[:size]
    target.resolve().write_bytes(data)
    err = _error(capsys, _translate(copy))
    assert "model.safetensors" in err and "truncated or corrupted" in err
    err = _error(
        capsys,
        [
            "evaluate",
            "--model",
            str(copy),
            "--src",
            str(copy.parent / "in.txt"),
            "--ref",
            str(copy.parent / "in.txt"),
        ],
    )
    assert "model.safetensors" in err


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_truncated_last_weights_refuse_resume_and_write_nothing(copy, capsys):
    weights = (copy / "last" / "model.safetensors").resolve()
    weights.write_bytes(weights.read_bytes()[:-10])
    before = _snapshot(copy)
    err = _error(capsys, ["train", "--resume", "--out", str(copy), "--set", "train.epochs=3"])
    assert "last/model.safetensors" in err and "meta.json" in err
    assert _snapshot(copy) == before  # the best model and everything else untouched


def test_mix_of_two_checkpoints_is_refused(copy, capsys):
    """A plain last/ (as runs before checkpoint directories had) holding step-4 weights
    beside a step-8 trainer state: the mix the old layout could leave after a kill."""
    last = (copy / "last").resolve()
    (copy / "last").unlink()
    (copy / "last").mkdir()
    shutil.copy(averaging.step_path(copy, 4), copy / "last" / "model.safetensors")
    shutil.copy(last / "trainer_state.pt", copy / "last" / "trainer_state.pt")
    err = _error(capsys, ["train", "--resume", "--out", str(copy), "--set", "train.epochs=3"])
    assert "a mix of checkpoints" in err and "step 4" in err and "step 8" in err


def test_garbage_trainer_state(copy, capsys):
    state = (copy / "last" / "trainer_state.pt").resolve()
    (state.parent / "meta.json").unlink()  # no digest to catch it first: torch.load must
    state.write_bytes(b"garbage, not a zip file")
    err = _error(capsys, ["train", "--resume", "--out", str(copy)])
    assert "trainer_state.pt: not a readable trainer state" in err
    assert "weights_only" not in err


@pytest.mark.parametrize("text", ['{"tokens": 5}', "[1, 2]", '{"tokens": ["a", "b"]}', '{"tok'])
def test_damaged_vocabulary(copy, capsys, text):
    (copy / "vocab.tgt.json").write_text(text, encoding="utf-8")
    err = _error(capsys, _translate(copy))
    assert "vocab.tgt.json" in err


def test_config_edited_or_emptied(copy, capsys):
    cfg = (copy / "config.yaml").read_text(encoding="utf-8")
    (copy / "config.yaml").write_text(cfg.replace("hidden_size: 32", "hidden_size: 48"))
    err = _error(capsys, _translate(copy))
    assert "model.safetensors: weights do not fit the model of config.yaml" in err
    (copy / "config.yaml").write_text("")
    assert "config.yaml: empty config file" in _error(capsys, _translate(copy))


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        ckpt.atomic_write_text(tmp_path / "a.txt", "x")
        tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(40))
        train(tiny_config(tsv, train={"epochs": 1}), tmp_path / "run")
    finally:
        os.umask(old)
    run = tmp_path / "run"
    files = [
        tmp_path / "a.txt",
        run / "config.yaml",
        run / "vocab.src.json",
        run / "metrics.jsonl",
        *run.joinpath("last").resolve().iterdir(),
    ]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {oct(0o640)}


def test_weights_errors_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        ckpt.read_weights(tmp_path / "none.safetensors")
    (tmp_path / "w.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}")
    with pytest.raises(DataError, match=r"w\.safetensors"):
        ckpt.read_weights(tmp_path / "w.safetensors")


def test_average_never_writes_through_a_link_to_an_input(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from transduce.engine.averaging import step_path, write_average

    for step, value in ((1, 1.0), (2, 3.0)):
        step_path(tmp_path, step).parent.mkdir(exist_ok=True)
        save_file({"w": torch.full((2,), value)}, str(step_path(tmp_path, step)))
    (tmp_path / "averaged").mkdir()
    (tmp_path / "averaged" / "model.safetensors").symlink_to(step_path(tmp_path, 1))
    out = write_average(tmp_path, 2)
    assert load_file(str(step_path(tmp_path, 1)))["w"].tolist() == [1.0, 1.0]
    assert load_file(str(out))["w"].tolist() == [2.0, 2.0] and not out.is_symlink()


def test_weights_that_diverged_to_nan_are_one_line_for_decoding_and_averaging(copy, capsys):
    # NaN weights raised deep in beam search and sampling; greedy wrote empty lines with
    # NaN scores (not JSON); averaging one such checkpoint made the whole average NaN
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from transduce import digests

    weights = (copy / "best" / "model.safetensors").resolve()
    with safe_open(weights, "pt") as f:
        meta = f.metadata()
    state = load_file(weights)
    save_file({k: v.fill_(float("nan")) for k, v in state.items()}, weights, metadata=meta)
    digests.record(weights)
    unit = json.loads((weights.parent / "meta.json").read_text())  # as a diverged run wrote it
    data = weights.read_bytes()
    unit["files"][weights.name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (weights.parent / "meta.json").write_text(json.dumps(unit))
    for flags in ([], ["--beam", "2"], ["--sample"]):
        err = _error(capsys, [*_translate(copy), "--checkpoint", "best", *flags])
        assert "hold NaN or infinite values" in err
    kept = averaging.step_checkpoints(copy)[-1]  # the weights `average` reads
    save_file({k: v.fill_(float("nan")) for k, v in load_file(kept).items()}, kept)
    digests.record(kept)
    assert "hold NaN or infinite values" in _error(capsys, ["average", "--model", str(copy)])
    assert not (copy / "averaged").exists()


WRITE_WEIGHTS = """
import hashlib, torch
from transduce.engine.checkpoint import weights_bytes
state = {f"t{i}": torch.full((3,), float(i)) for i in range(20)}
meta = {k: str(i) for i, k in enumerate(["step", "epoch", "config", "x", "y", "z"])}
print(hashlib.sha256(weights_bytes(state, meta)).hexdigest())
"""


def test_the_same_weights_are_the_same_bytes_in_every_process():
    # safetensors writes its header in a hash map's order, which changes per process: two
    # identical runs (or a resumed and an uninterrupted one) had different file digests
    import subprocess
    import sys

    digests_seen = {
        subprocess.run(
            [sys.executable, "-c", WRITE_WEIGHTS], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    }
    assert len(digests_seen) == 1


def test_only_the_trainers_kept_weights_are_pruned_and_averaged(copy, capsys):
    # a user's step_1.safetensors took a kept slot, evicted the real newest weights, was
    # averaged in; a step_-backup.safetensors was deleted by the pruning
    kept = averaging.step_checkpoints(copy)
    theirs = copy / "checkpoints"
    for name in ("step_1.safetensors", "step_-backup.safetensors", "step_00000001.safetensors"):
        (theirs / name).write_bytes(kept[-1].read_bytes())
    assert averaging.step_checkpoints(copy) == kept
    averaging.prune_steps(copy, 1)
    assert averaging.step_checkpoints(copy) == kept[-1:]
    assert {"step_1.safetensors", "step_-backup.safetensors"} <= {p.name for p in theirs.iterdir()}
    assert main(["average", "--model", str(copy), "--last", "2"]) == 0
    assert "only 1 kept" in capsys.readouterr().err
