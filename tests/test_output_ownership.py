"""Outputs that would land in what a command reads or did not create: an --output inside
the model being read (its checkpoints, trainer state, kept weights), a run's or an
export's folders that are links out of it, a re-export over a user's files, backtest's
per-window runs over an input. Each is refused in one line and nothing is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.forecasting.conftest import tiny_series_config, toy_series, write_wide
from tests.helpers import one_line_error, reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.tasks.train import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A tiny text run keeping two checkpoints and a tiny series run, trained once."""
    tmp = tmp_path_factory.mktemp("output_ownership")
    pairs = write_tsv(tmp / "rev.tsv", reverse_pairs(48, seed=6))
    train(tiny_config(pairs, train={"epochs": 2, "keep_checkpoints": 2}), tmp / "text")
    write_wide(tmp / "s.csv", toy_series(8, 60))
    (tmp / "s.yaml").write_text(yaml.safe_dump(tiny_series_config(str(tmp / "s.csv"))))
    assert main(["train", str(tmp / "s.yaml"), "--out", str(tmp / "series")]) == 0
    (tmp / "in.txt").write_text("abc\ncab\n")
    return tmp


def _copy(runs: Path, name: str, tmp_path: Path) -> Path:
    shutil.copytree(runs / name, tmp_path / name, symlinks=True)
    return tmp_path / name


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


RUN_FILES = [
    "best/meta.json",
    "last/trainer_state.pt",
    "ckpt/{step}/model.safetensors",
    "checkpoints/{kept}",
    "ckpt/{step}/new.txt",
    "metrics.jsonl",
]


def _in_run(run: Path, where: str) -> Path:
    step = next((run / "ckpt").iterdir()).name
    kept = sorted((run / "checkpoints").iterdir())[-1].name if "{kept}" in where else ""
    return run / where.format(step=step, kept=kept)


@pytest.mark.parametrize("where", RUN_FILES)
def test_translate_output_may_not_be_inside_the_run(runs, tmp_path, capsys, where):
    run = _copy(runs, "text", tmp_path)
    before, out = _snapshot(run), _in_run(run, where)
    args = ["translate", "--model", str(run), "--input", str(runs / "in.txt")]
    err = one_line_error(capsys, [*args, "--output", str(out)])
    assert str(out) in err and "of the model" in err
    assert _snapshot(run) == before


def test_a_new_file_beside_the_runs_own_is_allowed(runs, tmp_path, capsys):
    run = _copy(runs, "text", tmp_path)
    args = ["translate", "--model", str(run), "--input", str(runs / "in.txt")]
    assert main([*args, "--output", str(run / "hyp.txt")]) == 0
    assert len((run / "hyp.txt").read_text().splitlines()) == 2


@pytest.mark.parametrize("command", ["forecast", "backtest"])
@pytest.mark.parametrize("where", ["best/meta.json", "last/trainer_state.pt", "ckpt/{step}/x"])
def test_forecast_output_may_not_be_inside_the_run(runs, tmp_path, capsys, command, where):
    run = _copy(runs, "series", tmp_path)
    before, out = _snapshot(run), _in_run(run, where)
    args = [command, "--model", str(run), "--input", str(runs / "s.csv")]
    err = one_line_error(capsys, [*args, "--output", str(out)])
    assert str(out) in err and "of the model" in err
    assert _snapshot(run) == before


@pytest.mark.parametrize("which", ["input", "users"])
def test_backtest_refit_never_writes_into_a_folder_it_did_not_create(runs, tmp_path, capsys, which):
    out = tmp_path / "refit"
    (out / "window-0").mkdir(parents=True)
    mine = out / "window-0" / "series.csv"
    shutil.copyfile(runs / "s.csv", mine)
    before = mine.read_bytes()
    given = mine if which == "input" else runs / "s.csv"
    args = ["backtest", "--model", str(runs / "series"), "--input", str(given), "--refit"]
    err = one_line_error(capsys, [*args, "--out", str(out), "--windows", "1"])
    assert f"{out}: is not empty (it holds window-0)" in err
    assert mine.read_bytes() == before and sorted(out.rglob("*")) == [out / "window-0", mine]


def test_backtest_refit_out_may_not_be_a_link_or_in_the_run(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    args = ["backtest", "--model", str(runs / "series"), "--refit", "--windows", "1"]
    err = one_line_error(capsys, [*args, "--out", str(tmp_path / "link")])
    assert "link: is a symbolic link" in err and not any((tmp_path / "empty").iterdir())
    err = one_line_error(capsys, [*args, "--out", str(runs / "series" / "ckpt" / "refit")])
    assert "is inside a folder of the model" in err
    assert not (runs / "series" / "ckpt" / "refit").exists()
