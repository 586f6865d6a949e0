"""Two gloo processes on the CPU: DDP steps equal to one process on the concatenated batch
(with gradient accumulation too), a parameter unused on one rank, scheduled sampling,
rank-0-only writes and exact resume."""

import json
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tests.helpers import (
    as_torchrun_rank,
    free_port,
    metric_rows,
    reverse_pairs,
    same_last_weights,
    text_loop,
    tiny_config,
    write_tsv,
)
from transduce.config import Config, from_dict
from transduce.engine import distributed, parallel
from transduce.tasks.train import train

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)
STEPS = 4


def _entry(rank: int, world: int, port: int, fn, args) -> None:
    as_torchrun_rank(rank, world, port)
    torch.set_num_threads(1)
    fn(rank, *args)


def _spawn(fn, *args, world: int = 2) -> None:
    mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)


def _config(tsv, model: dict | None = None, **train):
    # SGD with momentum: the comparison with one process stays within float tolerance
    # (Adam's first steps amplify rounding in near-zero gradients).
    opts = {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "batch_size": 8, **train}
    return tiny_config(tsv, model={"preset": "bahdanau", **(model or {})}, train=opts)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _steps_child(rank: int, tsv, tmp) -> None:
    with distributed.launch("cpu") as ctx:
        trainer = text_loop(_config(tsv), tmp / f"rank{rank}", ctx.rank, ctx.world)
        plan, snaps = trainer.plan(0), {}
        for k in range(STEPS):
            trainer.update(trainer.task.batch(plan[k]))
            snaps[f"step{k}"] = distributed.gather_states(_flat(trainer.model))  # [2, P]
        # Accumulation: two micro-batches a step on each rank (no_sync on the first).
        acc = text_loop(_config(tsv, accumulate_steps=2), tmp / f"acc{rank}", ctx.rank, ctx.world)
        for k in range(STEPS // 2):
            acc.update(*(acc.task.batch(plan[2 * k + j]) for j in (0, 1)))
            snaps[f"acc{k}"] = distributed.gather_states(_flat(acc.model))
        # Scheduled sampling: each rank its own coins, the weights still the same.
        sampled = text_loop(_config(tsv, teacher_forcing=0.5), tmp / f"ss{rank}", rank, 2)
        for k in range(2):
            sampled.update(sampled.task.batch(plan[k]))
        snaps["sampled"] = distributed.gather_states(_flat(sampled.model))
        snaps["coins"] = distributed.gather_states(sampled.coins.get_state())
        _unused_child(rank, snaps)
        if rank == 0:
            save_file(snaps, str(tmp / "ranks.safetensors"))


def _child(rank: int, tsv, tmp) -> None:
    with distributed.launch("cpu"):  # one process group for both parts (start-up is slow)
        _steps_child(rank, tsv, tmp)
        _train_child(rank, tsv, tmp)


@pytest.fixture
def tsv_small(tmp_path):
    return write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both parts run once in one pair of processes; returns (tsv, their folder)."""
    tmp = tmp_path_factory.mktemp("ranks")
    tsv = write_tsv(tmp / "rev.tsv", reverse_pairs(160))
    _spawn(_child, tsv, tmp)
    return tsv, tmp


def test_two_ranks_step_like_one_process_on_the_concatenated_batch(two_ranks, tmp_path):
    tsv, ranks = two_ranks
    snaps = load_file(str(ranks / "ranks.safetensors"))
    cfg = _config(tsv)
    one = text_loop(cfg, tmp_path / "one", 0, 1)
    t, data = cfg.train, one.task.train_data
    plans = [data.batch_order(t.batch_size, t.seed, 0, t.bucket, rank=r, world=2) for r in (0, 1)]
    # Ranks hold different token counts: a mean of per-rank means would not match.
    assert any(data.batch(a).ntokens != data.batch(b).ntokens for a, b in zip(*plans, strict=True))
    before = _flat(one.model)
    for k in range(STEPS):
        both = snaps[f"step{k}"]
        assert torch.equal(both[0], both[1]), f"ranks differ after step {k}"
        one.update(data.batch(np.concatenate([plans[0][k], plans[1][k]])))
        torch.testing.assert_close(both[0], _flat(one.model), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(before, _flat(one.model))  # the steps did move the weights


def test_accumulation_on_two_ranks_is_one_step_on_all_four_batches(two_ranks, tmp_path):
    tsv, ranks = two_ranks
    snaps = load_file(str(ranks / "ranks.safetensors"))
    cfg = _config(tsv)
    one = text_loop(cfg, tmp_path / "one", 0, 1)
    t, data = cfg.train, one.task.train_data
    plans = [data.batch_order(t.batch_size, t.seed, 0, t.bucket, rank=r, world=2) for r in (0, 1)]
    for k in range(STEPS // 2):
        both = snaps[f"acc{k}"]
        assert torch.equal(both[0], both[1]), f"ranks differ after step {k}"
        parts = [plans[r][2 * k + j] for r in (0, 1) for j in (0, 1)]
        one.update(data.batch(np.concatenate(parts)))
        torch.testing.assert_close(both[0], _flat(one.model), rtol=1e-4, atol=1e-6)


def test_accumulation_in_one_process_is_one_step_on_the_concatenated_batches(tsv_small, tmp_path):
    acc = text_loop(_config(tsv_small, accumulate_steps=3), tmp_path / "acc", 0, 1)
    one = text_loop(_config(tsv_small), tmp_path / "one", 0, 1)
    plan = acc.plan(0)
    assert len({acc.task.batch(b).ntokens for b in plan[:3]}) > 1  # unequal batches
    for k in range(2):
        chunk = plan[3 * k : 3 * k + 3]
        acc.update(*(acc.task.batch(b) for b in chunk))
        one.update(one.task.batch(np.concatenate(chunk)))
        torch.testing.assert_close(_flat(acc.model), _flat(one.model), rtol=1e-4, atol=1e-6)
    # fit() takes accumulate_steps batches a step: ceil(batches / 3) steps an epoch
    assert acc.steps_per_epoch == -(-len(plan) // 3)


def test_scheduled_sampling_under_two_ranks(two_ranks):
    snaps = load_file(str(two_ranks[1] / "ranks.safetensors"))
    assert torch.equal(snaps["sampled"][0], snaps["sampled"][1])
    assert not torch.equal(snaps["coins"][0], snaps["coins"][1])  # each rank its own coins


class _Toy(torch.nn.Module):
    """``b`` is used only where the batch asks for it; ``never`` by nobody."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.never = (torch.nn.Linear(3, 1) for _ in range(3))

    def forward(self, batch, ratio):
        x, use_b = batch.x, bool(batch.use_b)
        out = self.a(x).sum() + (self.b(x * x).sum() if use_b else 0.0)
        return out, None


class _ToyBatch(NamedTuple):
    x: torch.Tensor
    use_b: torch.Tensor

    @property
    def ntokens(self) -> int:
        return len(self.x)


def _toy_batches():
    g = torch.Generator().manual_seed(3)
    return [
        _ToyBatch(torch.randn(4, 3, generator=g), torch.tensor(1)),
        _ToyBatch(torch.randn(7, 3, generator=g), torch.tensor(0)),
    ]


def _unused_child(rank: int, snaps: dict) -> None:
    toy = _Toy()
    net = parallel.wrap(toy, torch.device("cpu"), 2, find_unused=True)
    for _ in range(2):  # twice: DDP must not wait for b's gradient on rank 1
        toy.zero_grad(set_to_none=True)
        parallel.backward_step(net, [_toy_batches()[rank]], 1.0, 2)
    for name in ("a", "b"):
        snaps[f"toy.{name}"] = distributed.gather_states(getattr(toy, name).weight.grad)
    snaps["toy.never"] = torch.tensor([toy.never.weight.grad is None] * 2)


def test_a_parameter_unused_on_one_rank(two_ranks):
    snaps = load_file(str(two_ranks[1] / "ranks.safetensors"))
    toy = _Toy()
    parallel.backward_step(toy, _toy_batches(), 1.0, 1)  # one process, both batches
    for name in ("a", "b"):
        got = snaps[f"toy.{name}"]
        assert torch.equal(got[0], got[1])
        torch.testing.assert_close(got[0], getattr(toy, name).weight.grad)
    assert toy.never.weight.grad is None and bool(snaps["toy.never"].all())


def _train_child(rank: int, tsv, tmp) -> None:
    drop = {"embed_dropout": 0.2, "output_dropout": 0.2}  # each rank draws its own masks
    # Scheduled sampling and accumulation: the coins' streams and the position in the plan
    # must come back too.
    more = {"teacher_forcing": 0.7, "accumulate_steps": 2, "valid_every": 2}
    with distributed.launch("cpu"):
        # Each rank is given its own --out: rank 1 must leave its directory untouched.
        full = train(_config(tsv, drop, epochs=3, **more), tmp / f"full{rank}")
        (tmp / f"history{rank}.json").write_text(json.dumps(full.history))
        train(_config(tsv, drop, epochs=1, **more), tmp / f"part{rank}")
        # Resuming reads the run directory on every rank (a shared filesystem).
        train(out=tmp / "part0", resume=True, overrides=["train.epochs=3"])
        series = train(_series_config(tmp), tmp / f"series{rank}")
        (tmp / f"series_history{rank}.json").write_text(json.dumps(series.history))


def _series_config(tmp):
    """A forecasting run on a few seasonal series (M4's wide CSV layout)."""
    path = tmp / "series.csv"
    if not path.exists():
        rng = np.random.default_rng(0)
        t = np.arange(48)
        rows = [
            [f"S{i}", *(50 + 20 * np.sin(2 * np.pi * t / 6) + rng.normal(0, 1, 48))]
            for i in range(8)
        ]
        lines = ["V1," + ",".join(f"V{i + 2}" for i in range(48))]
        lines += [",".join([r[0], *(f"{v:.3f}" for v in r[1:])]) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    raw = {
        "series": {
            "format": "m4",
            "train": str(path),
            "horizon": 6,
            "lookback": 12,
            "period": 6,
            "stride": 3,
        },
        "model": {
            "preset": "luong",
            "cell": "gru",
            "attention": {"input_feeding": False},
            "encoder": {"embed_size": 8, "hidden_size": 8},
            "decoder": {"embed_size": 8, "hidden_size": 8},
        },
        "train": {
            "batch_size": 8,
            "max_steps": 6,
            "valid_every": 3,
            "valid_exact": False,
            "progress": False,
            "log_every": 0,
            "teacher_forcing": 0.5,
        },
    }
    return from_dict(Config, raw)


def test_a_series_run_under_two_ranks(two_ranks):
    _, tmp = two_ranks
    histories = [json.loads((tmp / f"series_history{r}.json").read_text()) for r in (0, 1)]
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in hs] for hs in histories]
    assert strip[0] == strip[1] and [h["step"] for h in strip[0]] == [3, 6]
    assert {"smape", "mase", "owa"} <= set(strip[0][-1])
    assert (tmp / "series0" / "model.safetensors").is_file() and not (tmp / "series1").exists()


def test_rank_zero_writes_and_resume_is_exact(two_ranks):
    _, tmp_path = two_ranks
    run = tmp_path / "full0"
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
    assert not (tmp_path / "full1").exists() and not (tmp_path / "part1").exists()
    # Both ranks saw the same validation results, so they took the same decisions.
    histories = [json.loads((tmp_path / f"history{r}.json").read_text()) for r in (0, 1)]
    strip = [[{k: v for k, v in h.items() if k != "seconds"} for h in hs] for hs in histories]
    assert strip[0] == strip[1] and len(strip[0]) >= 3
    # Two ranks, interrupted after one epoch and resumed: the same run as never stopping.
    assert same_last_weights(run, tmp_path / "part0")
    assert metric_rows(run) == metric_rows(tmp_path / "part0")
    with pytest.raises(ValueError, match="trained with 2 process"):
        train(out=tmp_path / "part0", resume=True, overrides=["train.epochs=4"])
