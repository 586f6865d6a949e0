import json
import math
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import metric_rows, reverse_pairs, same_last_weights, tiny_config, write_tsv
from transduce.config import TrainConfig, load_config, save_config
from transduce.data.corpus import DataError
from transduce.engine.checkpoint import load_trainer_state
from transduce.engine.teacher import teacher_forcing_ratio
from transduce.tasks.train import train


@pytest.fixture
def tsv(tmp_path):
    return write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))


def weights(path):
    return load_file(str(path))


def test_run_directory_layout(tsv, tmp_path):
    result = train(tiny_config(tsv), tmp_path / "run")
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "model.safetensors",
        "vocab.src.json",
        "vocab.tgt.json",
        "metrics.jsonl",
        "last/model.safetensors",
        "last/trainer_state.pt",
    ):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.tmp")), "temporary files left behind"
    state = load_trainer_state(run / "last" / "trainer_state.pt")  # weights_only=True
    assert state["counters"][0].item() == result.steps
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in lines if x["split"] == "valid"]
    assert [x["epoch"] for x in valid] == [1, 2]
    assert {"loss", "ppl", "acc", "exact", "step"} <= set(valid[0])
    assert math.isclose(valid[0]["ppl"], math.exp(valid[0]["loss"]), rel_tol=1e-6)
    assert any(x["split"] == "train" for x in lines)
    # The resolved config holds every default and loads back to the same config.
    assert load_config(run / "config.yaml") == tiny_config(tsv)


def test_training_learns(tsv, tmp_path):
    cfg = tiny_config(tsv, train={"epochs": 12, "batch_size": 16, "lr": 0.01})
    result = train(cfg, tmp_path / "run")
    first, last = result.history[0], result.history[-1]
    assert last["loss"] < first["loss"] * 0.5
    # Exact match on validation words never seen in training rises well above the start.
    assert max(h["exact"] for h in result.history) >= first["exact"] + 0.2


def test_same_seed_same_weights(tsv, tmp_path):
    train(tiny_config(tsv), tmp_path / "a")
    train(tiny_config(tsv), tmp_path / "b")
    a, b = weights(tmp_path / "a/model.safetensors"), weights(tmp_path / "b/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = tiny_config(tsv, train={"seed": 2})
    train(c, tmp_path / "c")
    other = weights(tmp_path / "c/model.safetensors")
    assert not all(torch.equal(a[k], other[k]) for k in a)


@pytest.mark.parametrize("preset", ["luong", "bahdanau"])
def test_resume_equals_uninterrupted(tsv, tmp_path, preset):
    extra = {"embed_dropout": 0.2, "output_dropout": 0.2, "preset": preset}  # uses the RNG
    full = train(tiny_config(tsv, model=extra, train={"epochs": 3}), tmp_path / "full")
    train(tiny_config(tsv, model=extra, train={"epochs": 1}), tmp_path / "part")
    resumed = train(out=tmp_path / "part", resume=True, overrides=["train.epochs=3"])
    assert resumed.steps == full.steps
    assert same_last_weights(tmp_path / "full", tmp_path / "part")
    assert metric_rows(tmp_path / "full") == metric_rows(tmp_path / "part")


def test_resume_mid_epoch_with_valid_every(tsv, tmp_path):
    cfg = tiny_config(tsv, train={"epochs": 2, "valid_every": 3})
    full = train(cfg, tmp_path / "full")
    train(
        tiny_config(tsv, train={"epochs": 2, "valid_every": 3, "max_steps": 5}), tmp_path / "part"
    )
    resumed = train(out=tmp_path / "part", resume=True, overrides=["train.max_steps=null"])
    assert resumed.steps == full.steps
    assert same_last_weights(tmp_path / "full", tmp_path / "part")


def test_refuses_to_overwrite_and_resume_needs_a_run(tsv, tmp_path):
    train(tiny_config(tsv, train={"epochs": 1}), tmp_path / "run")
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny_config(tsv), tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(out=tmp_path / "empty", resume=True)


def test_scheduled_sampling_and_label_smoothing_train(tsv, tmp_path):
    cfg = tiny_config(
        tsv,
        train={
            "teacher_forcing": 1.0,
            "teacher_forcing_schedule": "linear",
            "teacher_forcing_k": 10,
            "teacher_forcing_min": 0.5,
            "label_smoothing": 0.1,
            "epochs": 3,
        },
    )
    result = train(cfg, tmp_path / "run")
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_early_stopping_stops(tsv, tmp_path):
    # lr 1e-30: no update changes the loss (a learning rate must be positive)
    cfg = tiny_config(tsv, train={"epochs": 50, "lr": 1e-30, "patience": 2, "optimizer": "sgd"})
    result = train(cfg, tmp_path / "run")
    assert len(result.history) == 3  # one best, then two without improvement


def test_max_steps(tsv, tmp_path):
    result = train(tiny_config(tsv, train={"max_steps": 4}), tmp_path / "run")
    assert result.steps == 4 and result.history[-1]["step"] == 4


def test_teacher_forcing_schedules():
    const = TrainConfig(teacher_forcing=0.8)
    assert teacher_forcing_ratio(const, 10_000) == 0.8
    lin = TrainConfig(
        teacher_forcing_schedule="linear", teacher_forcing_k=100, teacher_forcing_min=0.2
    )
    assert teacher_forcing_ratio(lin, 0) == 1.0
    assert teacher_forcing_ratio(lin, 50) == pytest.approx(0.6)  # halfway from 1.0 to 0.2
    assert teacher_forcing_ratio(lin, 1000) == 0.2
    exp = TrainConfig(teacher_forcing_schedule="exponential", teacher_forcing_k=0.99)
    assert teacher_forcing_ratio(exp, 100) == pytest.approx(0.99**100)
    sig = TrainConfig(teacher_forcing_schedule="inverse_sigmoid", teacher_forcing_k=10)
    values = [teacher_forcing_ratio(sig, s) for s in (0, 20, 50, 100)]
    assert values == sorted(values, reverse=True) and values[-1] < 0.01


def test_bad_training_file_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("ab\tba\ncd no tab here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.tsv:2: no tab"):
        train(tiny_config(bad), tmp_path / "run")


def test_line_aligned_gzip_pairs_with_validation_files(tmp_path):
    import gzip

    def write(name, lines):
        with gzip.open(tmp_path / name, "wt", encoding="utf-8") as f:
            f.write("".join(x + "\n" for x in lines))

    train_pairs, valid_pairs = reverse_pairs(120), reverse_pairs(20, seed=5)
    write("train.src.gz", [s for s, _ in train_pairs])
    write("train.tgt.gz", [t for _, t in train_pairs])
    write("val.src.gz", [s for s, _ in valid_pairs])
    write("val.tgt.gz", [t for _, t in valid_pairs])
    data = {
        "format": "pairs",
        "train": "",
        "train_src": str(tmp_path / "train.src.gz"),
        "train_tgt": str(tmp_path / "train.tgt.gz"),
        "valid_src": str(tmp_path / "val.src.gz"),
        "valid_tgt": str(tmp_path / "val.tgt.gz"),
    }
    result = train(
        tiny_config(tmp_path / "unused", data=data, train={"epochs": 1}), tmp_path / "run"
    )
    assert result.steps == 8  # 120 training pairs in batches of 16; validation is separate


def test_pair_files_of_different_lengths_fail(tmp_path):
    (tmp_path / "a.src").write_text("ab\ncd\nef\n")
    (tmp_path / "a.tgt").write_text("ba\ndc\n")
    data = {
        "format": "pairs",
        "train_src": str(tmp_path / "a.src"),
        "train_tgt": str(tmp_path / "a.tgt"),
    }
    with pytest.raises(DataError, match=r"a\.tgt:.*a\.src|a\.src:.*a\.tgt"):
        train(tiny_config(tmp_path / "unused", data=data), tmp_path / "run")


def _cli_train(tmp_path, tsv, *extra: str, **train_keys) -> subprocess.CompletedProcess:
    save_config(tiny_config(tsv, train=train_keys), tmp_path / "cfg.yaml")
    cmd = [sys.executable, "-m", "transduce", "train", str(tmp_path / "cfg.yaml")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*cmd, "--out", str(tmp_path / "run"), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_train_prints_one_json_line_on_stdout_and_progress_on_stderr(tsv, tmp_path):
    proc = _cli_train(tmp_path, tsv, progress=True, log_every=2, epochs=2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = proc.stdout.splitlines()  # exactly one line: the summary
    summary = json.loads(line)
    assert any(ln.startswith("train step") for ln in proc.stderr.splitlines())
    valid = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in valid if x["split"] == "valid"]
    shown = [ln for ln in proc.stderr.splitlines() if ln.startswith("step=")]
    # One epoch base: the validation lines, metrics.jsonl and the summary's best agree.
    assert [ln.split()[1] for ln in shown] == [f"epoch={x['epoch']}" for x in valid]
    best = next(x for x in valid if x["step"] == summary["best"]["step"])
    assert summary["best"]["epoch"] == best["epoch"] == 2


def test_a_diverging_run_stops_in_one_line_with_nothing_non_finite_written(tsv, tmp_path):
    proc = _cli_train(tmp_path, tsv, "--set", "train.lr=1.0e+30")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("transduce train: error: the loss is nan at step ")
    run = tmp_path / "run"
    for line in (run / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in metrics.jsonl"))
    if (run / "last").exists():
        weights = load_file(str(run / "last" / "model.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values())
