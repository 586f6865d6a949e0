"""Two gloo processes on the CPU: synchronised steps, rank-0-only writes, exact resume."""

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from tests.helpers import metric_rows, reverse_pairs, same_last_weights, tiny_config, write_tsv
from transduce import distributed
from transduce.nn.models import build_model
from transduce.train import prepare_run, seed_everything, train
from transduce.trainer import Trainer

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)
STEPS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn, args) -> None:
    # What torchrun sets for each process it starts.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    fn(rank, *args)


def _spawn(fn, *args, world: int = 2) -> None:
    mp.spawn(_entry, args=(world, _free_port(), fn, args), nprocs=world, join=True)


def _config(tsv, model: dict | None = None, **train):
    # SGD with momentum: the comparison with one process stays within float tolerance
    # (Adam's first steps amplify rounding in near-zero gradients).
    opts = {"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "batch_size": 8, **train}
    return tiny_config(tsv, model={"preset": "bahdanau", **(model or {})}, train=opts)


def _trainer(cfg, run_dir, rank: int, world: int) -> Trainer:
    seed_everything(cfg.train.seed)
    pipeline, train_data, valid_data, refs = prepare_run(cfg, run_dir, resume=False)
    model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    return Trainer(cfg, model, pipeline, train_data, valid_data, run_dir, rank, world, refs)


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _steps_child(rank: int, tsv, tmp) -> None:
    with distributed.launch("cpu") as ctx:
        trainer = _trainer(_config(tsv), tmp / f"rank{rank}", ctx.rank, ctx.world)
        plan, snaps = trainer._batches(0), {}
        for k in range(STEPS):
            trainer.update(trainer.train_data.batch(plan[k]))
            snaps[f"step{k}"] = distributed.gather_states(_flat(trainer.model))  # [2, P]
        if rank == 0:
            save_file(snaps, str(tmp / "ranks.safetensors"))


def _child(rank: int, tsv, tmp) -> None:
    with distributed.launch("cpu"):  # one process group for both parts (start-up is slow)
        _steps_child(rank, tsv, tmp)
        _train_child(rank, tsv, tmp)


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
    one = _trainer(cfg, tmp_path / "one", 0, 1)
    t, data = cfg.train, one.train_data
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


def _train_child(rank: int, tsv, tmp) -> None:
    drop = {"embed_dropout": 0.2, "output_dropout": 0.2}  # each rank draws its own masks
    with distributed.launch("cpu"):
        # Each rank is given its own --out: rank 1 must leave its directory untouched.
        full = train(_config(tsv, drop, epochs=3, valid_every=4), tmp / f"full{rank}")
        (tmp / f"history{rank}.json").write_text(json.dumps(full.history))
        train(_config(tsv, drop, epochs=1, valid_every=4), tmp / f"part{rank}")
        # Resuming reads the run directory on every rank (a shared filesystem).
        train(out=tmp / "part0", resume=True, overrides=["train.epochs=3"])


def test_rank_zero_writes_and_resume_is_exact(two_ranks):
    _, tmp_path = two_ranks
    run = tmp_path / "full0"
    for name in ("config.yaml", "model.safetensors", "vocab.src.json", "vocab.tgt.json",
                 "metrics.jsonl", "last/model.safetensors", "last/trainer_state.pt"):  # fmt: skip
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
