"""What a run tells: TensorBoard event files, whole progress lines in logs, the run's end
and its budget, a finished run resumed."""

import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.config import TrainConfig
from transduce.engine.progress import Progress, planned_steps
from transduce.tasks.train import train


@pytest.fixture
def tsv(tmp_path):
    return write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_event_files_hold_the_metrics(tsv, tmp_path):
    cfg = tiny_config(tsv, train={"tensorboard": True, "accumulate_steps": 2})
    train(cfg, tmp_path / "run")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/tok_s", "valid/loss", "valid/exact"} <= tags
    valid = [r for r in _rows(tmp_path / "run") if r["split"] == "valid"]
    logged = events.Scalars("valid/loss")
    assert [e.step for e in logged] == [r["step"] for r in valid]
    assert [e.value for e in logged] == pytest.approx([r["loss"] for r in valid], rel=1e-6)


def test_log_lines_end_and_resume_of_a_finished_run(tsv, tmp_path, capsys):
    cfg = tiny_config(tsv, train={"progress": True, "log_every": 3, "epochs": 2})
    result = train(cfg, tmp_path / "run")  # stderr is no TTY here: whole lines
    out, err = capsys.readouterr()
    assert out == ""  # stdout is the command's result alone; the run speaks on stderr
    lines = [ln for ln in err.splitlines() if ln.startswith("train step")]
    assert lines and all(ln.split()[2].endswith(f"/{result.steps}") for ln in lines)
    assert "\r" not in err
    assert err.splitlines()[-2].startswith(f"step={result.steps} epoch=2 ")  # not epoch=3
    assert f"stopped by epochs=2; best checkpoint {tmp_path / 'run' / 'best'}" in err
    assert result.ended_by == "epochs=2"
    before = _rows(tmp_path / "run")
    again = train(out=tmp_path / "run", resume=True)
    assert "this run already ended (epochs=2)" in capsys.readouterr().err
    assert again.steps == result.steps and _rows(tmp_path / "run") == before


def test_a_budget_ends_the_run_and_says_so(tsv, tmp_path, capsys):
    cfg = tiny_config(tsv, train={"max_steps": 4, "epochs": 50, "progress": True})
    result = train(cfg, tmp_path / "run")
    assert result.steps == 4 and result.ended_by == "max_steps=4"
    err = capsys.readouterr().err
    assert "step=4 epoch=1 " in err  # mid-epoch: the first epoch, not 0
    assert "stopped by max_steps=4" in err
    # The same epoch (from 1) in metrics.jsonl, the history and the summary's best.
    valid = [r for r in _rows(tmp_path / "run") if r["split"] == "valid"]
    assert [r["epoch"] for r in valid] == [1] and result.best["epoch"] == 1


def test_the_eta_comes_from_the_first_budget():
    assert planned_steps(TrainConfig(epochs=10, max_steps=25), steps_per_epoch=9) == 25
    assert planned_steps(TrainConfig(epochs=2, max_steps=25), steps_per_epoch=9) == 18
    timed = Progress()
    timed.begin(TrainConfig(epochs=100, max_seconds=10.0, progress=False), 0, 9, 0)
    timed.start -= 2.0  # two seconds for 20 steps: 0.1 s a step, 8 s left -> 80 more
    assert timed.total(20, elapsed=2.0) == pytest.approx(100, abs=2)


class Crash(Exception):
    pass


def test_a_resumed_run_has_each_tensorboard_step_once(tsv, tmp_path):
    """Killed after logging past its last checkpoint and resumed there, the run logged
    those steps again: TensorBoard showed 24, 26, 28, 26, 28, ... (metrics.jsonl is cut
    back at the resume; the event files kept theirs)."""
    from transduce import atomic

    cfg = tiny_config(
        tsv, train={"tensorboard": True, "log_every": 1, "valid_every": 6, "epochs": 3}
    )
    saves = iter(range(1, 10**6))

    def hook(what: str) -> None:
        if what == "trainer state" and next(saves) == 2:
            raise Crash(what)

    atomic.fault_hook = hook
    try:
        with pytest.raises(Crash):
            train(cfg, tmp_path / "run")
    finally:
        atomic.fault_hook = None
    train(out=tmp_path / "run", resume=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("train/loss")]
    rows = [r["step"] for r in _rows(tmp_path / "run") if r["split"] == "train"]
    assert steps == rows == sorted(set(rows))
