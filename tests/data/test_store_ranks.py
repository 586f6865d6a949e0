"""Two gloo ranks training from one prepared store: both map the same files, each reads
its own share of the batches, and the steps equal one process on the concatenated batches
(as tests/test_distributed.py checks for the in-memory path)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.helpers import as_torchrun_rank, free_port, reverse_pairs, tiny_config, write_tsv
from transduce.data.prepare import prepare
from transduce.engine import distributed
from transduce.engine.loop import Loop
from transduce.engine.run import seed_everything
from transduce.nn.models import build_model
from transduce.tasks.text import TextTask
from transduce.tasks.train import prepare_run, train

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)
STEPS = 4


def _config(tsv, store):
    opts = {
        "optimizer": "sgd",
        "lr": 0.5,
        "momentum": 0.9,
        "batch_size": 8,
        "max_steps": STEPS,
        "epochs": 50,
    }
    return tiny_config(tsv, data={"prepared": str(store)}, train=opts)


def _entry(rank: int, world: int, port: int, tsv, store, tmp) -> None:
    as_torchrun_rank(rank, world, port)
    torch.set_num_threads(1)
    with distributed.launch("cpu") as ctx:
        cfg = _config(tsv, store)
        _, data, _, _ = prepare_run(cfg, tmp / f"peek{rank}", resume=False)
        t = cfg.train
        plan = data.batch_order(t.batch_size, t.seed, 0, t.bucket, rank=ctx.rank, world=2)
        seen = {"mapped": str(data.src.data.filename), "plan": [b.tolist() for b in plan]}
        (tmp / f"rank{rank}.json").write_text(json.dumps(seen))
        train(cfg, tmp / f"run{rank}")


def test_two_ranks_on_the_store_equal_one_process(tmp_path):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))
    store = prepare(tiny_config(tsv).data, tmp_path / "store", progress=False).path
    mp.spawn(_entry, args=(2, free_port(), tsv, store, tmp_path), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["mapped"] == ranks[1]["mapped"] == str(store / "train.src.ids")
    shares = [{i for b in r["plan"] for i in b} for r in ranks]
    assert shares[0] and not shares[0] & shares[1]  # each rank reads only its share
    assert not (tmp_path / "run1").exists()  # rank 0 writes
    cfg = _config(tsv, store)
    seed_everything(cfg.train.seed)
    pipeline, data, valid, refs = prepare_run(cfg, tmp_path / "one", resume=False)
    model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    one = Loop(cfg, TextTask(cfg, model, pipeline, data, valid, refs), tmp_path / "one", 0, 1)
    for k in range(STEPS):
        one.update(data.batch(np.array(ranks[0]["plan"][k] + ranks[1]["plan"][k])))
    two = load_file(str(tmp_path / "run0" / "last" / "model.safetensors"))
    for name, param in one.model.state_dict().items():
        torch.testing.assert_close(two[name], param, rtol=1e-4, atol=1e-6, msg=name)
