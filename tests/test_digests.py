"""Every weights file transduce writes outside a checkpoint unit (kept checkpoints for
averaging, averaged/, estimator saves) has its SHA-256 in a sidecar, and every load checks
it: a flipped bit or a damaged sidecar is one line naming the file; weights written before
sidecars (none beside them) load with a warning."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce import digests
from transduce.commands.cli import main
from transduce.engine.averaging import step_checkpoints
from transduce.engine.checkpoint import read_weights
from transduce.errors import DataError
from transduce.tasks.train import train


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("digests")
    cfg = tiny_config(
        write_tsv(tmp / "rev.tsv", reverse_pairs(48, seed=3)),
        train={"keep_checkpoints": 2, "epochs": 3},
    )
    train(cfg, tmp / "run")
    assert main(["average", "--model", str(tmp / "run"), "--last", "2"]) == 0
    return tmp / "run"


@pytest.fixture
def run(kept_run, tmp_path) -> Path:
    shutil.copytree(kept_run, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # in the last tensor's data: safetensors itself still loads it
    path.write_bytes(bytes(data))


def _weights(run: Path) -> list[Path]:
    return [*step_checkpoints(run), run / "averaged" / "model.safetensors"]


def test_each_weights_file_has_a_sidecar_that_sha256sum_accepts(kept_run):
    kept = step_checkpoints(kept_run)
    assert len(kept) == 2  # the older ones pruned with their sidecars
    assert sorted(p.name for p in (kept_run / "checkpoints").iterdir()) == sorted(
        [p.name for p in kept] + [p.name + ".sha256" for p in kept]
    )
    for path in _weights(kept_run):
        if shutil.which("sha256sum"):
            subprocess.run(
                ["sha256sum", "-c", "--quiet", path.name + ".sha256"], cwd=path.parent, check=True
            )
        assert digests.check(path)


@pytest.mark.parametrize("which", ["kept", "averaged"])
def test_a_flipped_bit_is_refused_naming_the_file(run, which):
    path = _weights(run)[0 if which == "kept" else -1]
    _flip(path)
    with pytest.raises(DataError, match=f"{path.name}: does not match the SHA-256 recorded"):
        read_weights(path)


def test_averaging_a_flipped_kept_checkpoint_is_one_line(run, capsys):
    _flip(step_checkpoints(run)[0])
    assert main(["average", "--model", str(run), "--last", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "SHA-256" in err and "Traceback" not in err


def test_translate_with_flipped_averaged_weights_is_one_line(run, capsys, tmp_path):
    _flip(run / "averaged" / "model.safetensors")
    (tmp_path / "s.txt").write_text("abc\n")
    args = ["translate", "--model", str(run), "--checkpoint", "averaged", "--input"]
    assert main([*args, str(tmp_path / "s.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "averaged/model.safetensors" in err


@pytest.mark.parametrize("text", ["", "zz  model.safetensors\n", "\xff"])
def test_a_damaged_sidecar_is_refused(run, text):
    path = run / "averaged" / "model.safetensors"
    digests.sidecar(path).write_text(text, encoding="latin-1")
    with pytest.raises(DataError, match=r"model\.safetensors\.sha256: damaged checksum file"):
        read_weights(path)


def test_weights_written_before_sidecars_load_with_a_warning(run, caplog):
    path = run / "averaged" / "model.safetensors"
    os.unlink(digests.sidecar(path))
    with caplog.at_level(logging.WARNING, logger="transduce"):
        assert read_weights(path)
    assert "no checksum recorded" in caplog.text


def test_rewriting_the_average_replaces_its_sidecar(run):
    side = digests.sidecar(run / "averaged" / "model.safetensors")
    side.write_text("0" * 64 + "  model.safetensors\n")  # a stale digest
    assert main(["average", "--model", str(run), "--last", "1"]) == 0
    assert digests.check(run / "averaged" / "model.safetensors")


def test_estimator_saves_are_verified(tmp_path):
    from transduce.estimators import SimpleSeq2Seq, load_model

    model = SimpleSeq2Seq(input_dim=1, hidden_dim=4, output_length=2, output_dim=1)
    model.compile(loss="mse", optimizer="adam", lr=0.01)
    x = np.random.default_rng(0).normal(size=(16, 5, 1)).astype(np.float32)
    model.fit(x, x[:, :2], epochs=1, batch_size=8)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors.sha256").is_file()
    load_model(tmp_path / "m")
    _flip(tmp_path / "m" / "model.safetensors")
    with pytest.raises(DataError, match=r"model\.safetensors: does not match the SHA-256"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("content", [None, "{", "[]", '{"class": "Seq2Seq"}'])
def test_a_missing_or_damaged_estimator_description_is_one_error(tmp_path, content):
    from transduce.estimators import load_model

    (tmp_path / "m").mkdir()
    if content is not None:
        (tmp_path / "m" / "estimator.json").write_text(content)
    with pytest.raises(DataError, match=r"estimator\.json"):
        load_model(tmp_path / "m")
