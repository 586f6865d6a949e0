"""What the peer comparisons (``opennmt_speed.py``, ``joeynmt_speed.py``) share: timing
transduce's own update on the prepared batches, the A/B/A/B alternation, and the one JSON
line both print."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_speed import build_trainer, cpu_name, time_steps

from transduce.engine import distributed

STATISTIC = "aggregate target tokens/s over the same timed steps, mean of rounds"


def time_transduce(cfg, folder: Path, warmup: int, steps: int) -> dict:
    """transduce's trainer on ``folder``'s data: target tokens/s over ``steps`` timed steps
    after ``warmup`` untimed ones (the aggregate, not a mean of per-step rates)."""
    with distributed.launch("cpu") as ctx:
        trainer = build_trainer(cfg, folder, str(folder), ctx)
        seconds, tokens = time_steps(trainer, warmup, steps)
    return {
        "params_m": round(sum(p.numel() for p in trainer.model.parameters()) / 1e6, 2),
        "tgt_tok_s": round(sum(tokens) / sum(seconds)),
        "steps": steps,
        "tokens_per_step": round(sum(tokens) / len(tokens)),
    }


def alternate(rounds: int, ours: Callable[[], dict], peer: Callable[[], dict]):
    """A, B, A, B, ...: both toolkits see the same drift of the machine's load."""
    a, b = [], []
    for _ in range(rounds):
        a.append(ours())
        b.append(peer())
    return a, b


def record(benchmark: str, peer_name: str, config, ours: list, peer: list, **extra) -> dict:
    """The comparison's JSON line: both rates (means of the rounds), their ratio, each
    round's own ratio (their spread shows the noise) and every round's figures."""
    a = statistics.mean(r["tgt_tok_s"] for r in ours)
    b = statistics.mean(r["tgt_tok_s"] for r in peer)
    pairs = list(zip(ours, peer, strict=True))
    return {
        "benchmark": benchmark,
        "config": os.path.relpath(config),
        **extra,
        "statistic": STATISTIC,
        "transduce_tgt_tok_s": round(a),
        f"{peer_name}_tgt_tok_s": round(b),
        "ratio": round(a / b, 2),
        "round_ratios": [round(x["tgt_tok_s"] / y["tgt_tok_s"], 2) for x, y in pairs],
        "rounds": [{"transduce": x, peer_name: y} for x, y in pairs],
        "cpu": cpu_name(),
        "torch": torch.__version__,
    }
