"""fp16 training with a gradient scaler, checked on the CPU (CUDA: tests/engine/test_cuda.py):
an overflowed step is skipped rather than fatal, and resume keeps the loss scale."""

import pytest
import torch

from tests.helpers import reverse_pairs, same_last_weights, tiny_config, write_tsv
from transduce.engine.loop import Loop
from transduce.engine.run import seed_everything
from transduce.nn.models import build_model
from transduce.tasks.text import TextTask
from transduce.tasks.train import prepare_run, train


@pytest.fixture
def tsv(tmp_path):
    return write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))


def _loop(cfg, run_dir) -> Loop:
    seed_everything(cfg.train.seed)
    pipeline, train_data, valid_data, refs = prepare_run(cfg, run_dir, resume=False)
    model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    return Loop(cfg, TextTask(cfg, model, pipeline, train_data, valid_data, refs), run_dir)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_only_fp16_scales_the_loss(tsv, tmp_path, precision):
    loop = _loop(tiny_config(tsv, train={"precision": precision}), tmp_path / "run")
    assert loop.scaler.is_enabled() == (precision == "fp16")
    before = _flat(loop.model)
    loss, _ = loop.update(loop.task.batch(loop.plan(0)[0]))
    assert torch.isfinite(torch.tensor(loss)) and not torch.equal(before, _flat(loop.model))


def test_an_overflowed_fp16_step_is_skipped_and_the_scale_lowered(tsv, tmp_path):
    loop = _loop(tiny_config(tsv, train={"precision": "fp16"}), tmp_path / "run")
    # A scale no fp16 gradient survives: every gradient overflows to inf.
    loop.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    before = _flat(loop.model)
    loop.update(loop.task.batch(loop.plan(0)[0]))  # no NonFiniteError: the scaler handles it
    assert torch.equal(before, _flat(loop.model)), "an overflowed step reached the weights"
    assert loop.scaler.get_scale() == 2.0**99
    assert loop.step == 1


def test_fp16_resume_equals_an_uninterrupted_run(tsv, tmp_path):
    extra = {"precision": "fp16", "epochs": 2}
    full = train(tiny_config(tsv, train=extra), tmp_path / "full")
    train(tiny_config(tsv, train={**extra, "max_steps": 5}), tmp_path / "part")
    resumed = train(out=tmp_path / "part", resume=True, overrides=["train.max_steps=null"])
    assert resumed.steps == full.steps
    assert same_last_weights(tmp_path / "full", tmp_path / "part")  # resumed mid-epoch


def test_the_loss_scale_travels_with_the_trainer_state(tsv, tmp_path):
    loop = _loop(tiny_config(tsv, train={"precision": "fp16"}), tmp_path / "run")
    loop.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)
    loop.update(loop.task.batch(loop.plan(0)[0]))  # overflow: the scale drops to 2**99
    other = _loop(tiny_config(tsv, train={"precision": "fp16"}), tmp_path / "other")
    other.restore(loop.state_dict())
    assert other.scaler.get_scale() == loop.scaler.get_scale() == 2.0**99


def test_the_compiled_objective_trains_like_the_eager_one(tsv, tmp_path):
    """``train.compile: true`` (torch.compile of the objective, dynamic shapes) changes the
    speed, not the arithmetic: the same updates give the same losses and weights within
    float rounding. (No dropout: compiled graphs draw their own random numbers.)"""
    eager = _loop(tiny_config(tsv), tmp_path / "eager")
    compiled = _loop(tiny_config(tsv, train={"compile": True}), tmp_path / "compiled")
    for idx in eager.plan(0)[:3]:  # batches of different lengths: no recompile per shape
        a, _ = eager.update(eager.task.batch(idx))
        b, _ = compiled.update(compiled.task.batch(idx))
        assert abs(a - b) <= 1e-4 * max(1.0, abs(a))
    assert torch.allclose(_flat(eager.model), _flat(compiled.model), atol=1e-5)
