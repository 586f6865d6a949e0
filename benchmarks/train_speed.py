"""Training throughput: target tokens/s of real training steps on Multi30k de->en.

Builds the recipe's data pipeline and model, then runs the trainer's own update (batch
assembly, forward, loss, backward, clipping, optimizer step) on the recipe's length-bucketed
batches in training order. After ``--warmup`` steps it times ``--steps`` steps one by one and
prints ONE JSON line: the median of the per-step target tokens/s, the overall rate, peak RSS
and the resolved config. No validation, no checkpoints.

    python benchmarks/train_speed.py                                  # ~11M bi-GRU + attention
    python benchmarks/train_speed.py --config configs/multi30k_de_en_transformer.yaml
    python benchmarks/train_speed.py --precision bf16 --threads 2
    torchrun --nproc_per_node 2 benchmarks/train_speed.py --threads 1   # 2 gloo processes

Under torchrun the rate counts the tokens of all ranks (rank 0 prints). ``--profile N``
adds a torch.profiler table of N more steps (operators by self CPU time) to stderr and the
top operators to the JSON line. ``--flops`` adds the model's FLOPs per target token (torch's
flop counter over 20 updates: matmuls forward and backward) and this machine's 1024^3 matmul
rate, whose ratio is the tokens/s no implementation of that model can beat here.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_cli import int_at_least, run
from bench_cli import parser as make_parser

from transduce.config import load_config, to_dict
from transduce.data.pipeline import TextPipeline, filter_lengths, load_texts
from transduce.engine import distributed
from transduce.engine.loop import Loop
from transduce.engine.run import seed_everything
from transduce.nn.models import build_model
from transduce.tasks.text import TextTask

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "multi30k_de_en_rnn_12m.yaml"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def build_trainer(cfg, folder: Path, pipeline_dir: str | None, ctx) -> Loop:
    """The recipe's pipeline (trained into ``folder``, or loaded from ``pipeline_dir``),
    model and trainer; nothing is written outside ``folder``."""
    texts = load_texts(cfg.data)
    if pipeline_dir:
        pipeline = TextPipeline.load(cfg.data, pipeline_dir)
    else:
        pipeline = TextPipeline.build(cfg.data, texts.train_src, texts.train_tgt, folder)
    train_data = filter_lengths(pipeline.encode(texts.train_src, texts.train_tgt), cfg.data, "t")
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    task = TextTask(cfg, model, pipeline, train_data, train_data.subset(np.arange(0)))
    return Loop(cfg, task, folder, rank=ctx.rank, world=ctx.world)


def time_steps(trainer: Loop, warmup: int, steps: int) -> tuple[list[float], list[int]]:
    """Seconds and global target tokens of ``steps`` updates after ``warmup`` untimed ones."""
    plan = [b for epoch in range(100) for b in trainer.plan(epoch)][: warmup + steps]
    seconds, tokens = [], []
    for i, idx in enumerate(plan):
        start = time.perf_counter()
        _, ntok = trainer.update(trainer.task.batch(idx))
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
            tokens.append(ntok)
    return seconds, tokens


def profile_steps(trainer: Loop, steps: int, first: int) -> list[dict]:
    """Operators by self CPU time over ``steps`` more updates (table to stderr)."""
    from torch.profiler import ProfilerActivity, profile

    plan = trainer.plan(1)[first : first + steps]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in plan:
            trainer.update(trainer.task.batch(idx))
    table = prof.key_averages()
    print(table.table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    total = sum(e.self_cpu_time_total for e in table) or 1.0
    top = sorted(table, key=lambda e: -e.self_cpu_time_total)[:12]
    return [
        {"op": e.key, "self_pct": round(100 * e.self_cpu_time_total / total, 1), "calls": e.count}
        for e in top
    ]


def flops_per_token(trainer: Loop, plan_steps: int = 20) -> float:
    """Floating-point operations of one update per target token (matmuls, convolutions and
    attention as ``torch.utils.flop_counter`` counts them: forward and backward), averaged
    over the first ``plan_steps`` batches of the training order."""
    from torch.utils.flop_counter import FlopCounterMode

    plan = trainer.plan(0)[:plan_steps]
    flops, tokens = 0, 0
    for idx in plan:
        with FlopCounterMode(display=False) as counter:
            _, ntok = trainer.update(trainer.task.batch(idx))
        flops += counter.get_total_flops()
        tokens += ntok
    return flops / max(tokens, 1)


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """This machine's float32 matmul rate (GFLOP/s) on ``size``-square matrices: the best
    a perfectly efficient implementation of the model could sustain."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--config", default=str(RECIPE), help="training recipe (YAML)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default=None,
        help="override train.precision (bf16 autocast)",
    )
    parser.add_argument(
        "--threads", type=int_at_least(0), default=0, help="torch threads (0: default)"
    )
    parser.add_argument("--warmup", type=int_at_least(0), default=10)
    parser.add_argument("--steps", type=int_at_least(1), default=60, help="timed steps")
    parser.add_argument("--pipeline", help="run directory to take vocabularies/BPE models from")
    parser.add_argument(
        "--profile", type=int_at_least(0), default=0, metavar="N", help="profile N steps"
    )
    parser.add_argument(
        "--flops",
        action="store_true",
        help="also count FLOPs per target token and time a 1024^3 matmul: "
        "the compute ceiling in tokens/s",
    )
    args = parser.parse_args()
    overrides = [*args.set, "train.progress=false"]
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    cfg = load_config(args.config, overrides)
    if args.threads:
        torch.set_num_threads(args.threads)
    with distributed.launch(cfg.train.device) as ctx, tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(cfg, Path(tmp), args.pipeline, ctx)
        seconds, tokens = time_steps(trainer, args.warmup, args.steps)
        median = statistics.median(t / s for t, s in zip(tokens, seconds, strict=True))
        top = profile_steps(trainer, args.profile, 0) if args.profile else None
        ceiling = None
        if args.flops:
            per_token = flops_per_token(trainer)
            gflops = matmul_gflops(torch.get_num_threads())
            ceiling = {
                "mflop_per_tgt_token": round(per_token / 1e6, 1),
                "matmul_gflops": round(gflops, 1),
                "ceiling_tgt_tok_s": round(gflops * 1e9 / per_token),
                "achieved_gflops": round(median * per_token / 1e9, 1),
            }
        rss = max(distributed.gather_objects(peak_rss_mib()))
    if ctx.rank:
        return
    record = {
        "benchmark": "train_speed",
        "config": os.path.relpath(args.config),
        "overrides": args.set,
        "params_m": round(sum(p.numel() for p in trainer.model.parameters()) / 1e6, 2),
        "tgt_tok_s_median": round(median),
        "tgt_tok_s_overall": round(sum(tokens) / sum(seconds)),
        "step_ms_median": round(1000 * statistics.median(seconds), 1),
        "tokens_per_step": round(statistics.mean(tokens)),
        "steps": args.steps,
        "warmup": args.warmup,
        "precision": trainer.precision,  # what train.precision (auto: the machine) chose
        "threads": torch.get_num_threads(),
        "processes": ctx.world,
        "peak_rss_mib": round(rss, 1),  # per process (the largest rank's)
        "device": str(trainer.device),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        **({"profile_top": top} if top else {}),
        **({"compute": ceiling} if ceiling else {}),
        "resolved_config": to_dict(cfg),
    }
    print(json.dumps(record))


if __name__ == "__main__":
    run(main)
