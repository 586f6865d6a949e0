"""Training on a CUDA device (``-m cuda``; skipped where torch sees none): a step equals the
CPU's within float tolerance, bf16 and fp16 autocast train, fp16 through a gradient scaler,
and DDP over NCCL steps like one process on the concatenated batch.

Run by ``benchmarks/gpu_check.sh``; the CPU side of fp16 is tests/engine/test_precision.py."""

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers import (
    as_torchrun_rank,
    free_port,
    reverse_pairs,
    text_loop,
    tiny_config,
    write_tsv,
)
from transduce.engine import distributed
from transduce.engine.loop import Loop

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch"),
]
PRESETS = ["bahdanau", "transformer"]


@pytest.fixture(autouse=True)
def exact_fp32():
    """TF32 would round fp32 matmuls to 10-bit mantissas: off for the equality checks."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def tsv(tmp_path):
    return write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))


def _config(tsv, preset: str, **train):
    # No dropout: CPU and CUDA draw different masks. SGD: Adam's first steps amplify
    # rounding in near-zero gradients.
    opts = {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "batch_size": 16, **train}
    model = {"preset": preset, "transformer": {"d_model": 32, "ff_size": 64, "dropout": 0.0}}
    return tiny_config(tsv, model=model, train=opts)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().float().cpu().reshape(-1) for p in model.parameters()])


def _losses(loop: Loop, steps: int) -> list[float]:
    plan = loop.plan(0)
    return [loop.update(loop.task.batch(plan[k % len(plan)]))[0] for k in range(steps)]


@pytest.mark.parametrize("preset", PRESETS)
def test_training_steps_on_cuda_equal_the_cpus(tsv, tmp_path, preset):
    cpu = text_loop(_config(tsv, preset, device="cpu", precision="fp32"), tmp_path / "cpu")
    gpu = text_loop(_config(tsv, preset, device="cuda", precision="fp32"), tmp_path / "gpu")
    assert gpu.device.type == "cuda" and torch.equal(_flat(cpu.model), _flat(gpu.model))
    before = _flat(cpu.model)
    for a, b in zip(_losses(cpu, 4), _losses(gpu, 4), strict=True):
        assert a == pytest.approx(b, rel=1e-4)
    torch.testing.assert_close(_flat(gpu.model), _flat(cpu.model), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(before, _flat(cpu.model))  # the steps did move the weights


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("preset", PRESETS)
def test_16_bit_autocast_trains_on_cuda(tsv, tmp_path, preset, precision):
    loop = text_loop(_config(tsv, preset, device="cuda", precision=precision), tmp_path / "run")
    assert loop.scaler.is_enabled() == (precision == "fp16")
    losses = _losses(loop, 30)
    assert all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses  # it learns


def test_an_overflowed_fp16_step_on_cuda_is_skipped(tsv, tmp_path):
    loop = text_loop(_config(tsv, "transformer", device="cuda", precision="fp16"), tmp_path / "r")
    loop.scaler = torch.amp.GradScaler("cuda", init_scale=2.0**100)
    before = _flat(loop.model)
    loop.update(loop.task.batch(loop.plan(0)[0]))
    assert torch.equal(before, _flat(loop.model)) and loop.scaler.get_scale() == 2.0**99


def _nccl_child(rank: int, world: int, port: int, tsv, tmp) -> None:
    as_torchrun_rank(rank, world, port)
    with distributed.launch("cuda") as ctx:
        assert ctx.backend == "nccl"
        loop = text_loop(
            _config(tsv, "bahdanau", device="cuda"), tmp / f"r{rank}", ctx.rank, ctx.world
        )
        plan = loop.plan(0)
        for k in range(3):
            loop.update(loop.task.batch(plan[k]))
        weights = distributed.gather_states(_flat(loop.model))  # [world, P]
        if rank == 0:
            torch.save(weights, tmp / "ranks.pt")


@pytest.mark.skipif(
    torch.cuda.device_count() < 2,
    reason="DDP over NCCL needs a GPU per rank (NCCL refuses two ranks on one device); "
    f"{torch.cuda.device_count()} GPU(s) here",
)
def test_ddp_over_nccl_keeps_every_rank_equal(tsv, tmp_path):
    world = 2
    mp.spawn(_nccl_child, args=(world, free_port(), tsv, tmp_path), nprocs=world, join=True)
    weights = torch.load(tmp_path / "ranks.pt", weights_only=True)
    assert torch.equal(weights[0], weights[1]), "the ranks' weights differ after 3 steps"
