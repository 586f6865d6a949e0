"""What the peer comparisons (``opennmt_speed.py``, ``joeynmt_speed.py``) share: timing
transduce's own update on the prepared batches, the A/B/A/B alternation, and the one JSON
line both print."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_cli import int_at_least
from bench_cli import parser as make_parser
from train_speed import build_trainer, cpu_name, time_steps

from transduce.engine import distributed

STATISTIC = "aggregate target tokens/s over the same timed steps, mean of rounds"


def peer_parser(
    doc: str, peer: str, config: Path, threads: int, warmup: int, steps: int
) -> argparse.ArgumentParser:
    """The flags both comparisons take (each script adds its peer's own): the config, the
    threads, the warm-up and timed steps of each toolkit, the rounds, ``--peer-thp`` and
    transduce's ``--precision`` (fp32 by default, as the peers train)."""
    parser = make_parser(doc)
    parser.add_argument("--config", default=str(config))
    parser.add_argument("--threads", type=int_at_least(1), default=threads)
    parser.add_argument(
        "--warmup", type=int_at_least(0), default=warmup, help="untimed steps (each toolkit)"
    )
    parser.add_argument(
        "--steps", type=int_at_least(1), default=steps, help="timed steps (each toolkit)"
    )
    parser.add_argument(
        "--rounds", type=int_at_least(1), default=2, help="alternations A/B (default 2)"
    )
    parser.add_argument(
        "--peer-thp", action="store_true", help=f"THP_MEM_ALLOC_ENABLE=1 for {peer}"
    )
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="fp32",
        help=f"transduce's train.precision ({peer} trains in fp32 on a CPU: it has no CPU "
        "bf16); auto: what transduce/device.py chooses for the model and this CPU",
    )
    return parser


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
        "precision": trainer.precision,
    }


def peer_env(threads: int, thp: bool) -> dict[str, str]:
    """The peer's environment: this one with ``threads`` OpenMP/MKL threads, and without
    ``THP_MEM_ALLOC_ENABLE`` (which importing transduce sets, ``transduce/__init__.py``) unless
    ``thp``: the peer's own recipe does not set it, so by default it runs as its users run it;
    ``--peer-thp`` gives it transduce's allocator setting too."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if thp:
        env["THP_MEM_ALLOC_ENABLE"] = "1"
    else:
        env.pop("THP_MEM_ALLOC_ENABLE", None)
    return env


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
        "transduce_thp": os.environ.get("THP_MEM_ALLOC_ENABLE", "0"),
    }
