"""SIGKILL loop: kill training runs at every checkpoint write and at random moments, resume
each until it finishes, and check it ends bit-identical to an uninterrupted run.

Every run is a forked child process (torch is imported once, here), killed with a real
SIGKILL: phase 1 kills one fresh run at each write a checkpoint makes (the k-th write for
every k, through ``atomic.fault_hook``), phase 2 kills runs at random times until
``--kills`` kills are reached, resuming each (and killing it again) until it completes. A
finished run must hold the reference's last weights bit for bit, its validation metrics,
the same best checkpoint, and no temporary file. Prints ONE JSON line.

    taskset -c 1 nice python benchmarks/kill_loop.py --kills 120
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from bench_cli import int_at_least
from bench_cli import parser as make_parser
from safetensors.torch import load_file

from transduce import atomic
from transduce.config import Config, from_dict
from transduce.tasks.train import train


def make_config(folder: Path, seed: int):
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdef") for _ in range(rng.randint(2, 6))) for _ in range(96)]
    (folder / "rev.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in words))
    return from_dict(
        Config,
        {
            "data": {"train": str(folder / "rev.tsv"), "valid_fraction": 0.2},
            "model": {
                "preset": "luong",
                "encoder": {"embed_size": 16, "hidden_size": 32},
                "decoder": {"embed_size": 16, "hidden_size": 32},
            },
            "train": {
                "batch_size": 16,
                "epochs": 3,
                "valid_every": 3,
                "lr": 0.01,
                "keep_checkpoints": 2,
                "progress": False,
                "log_every": 2,
                "threads": 1,
            },
            "decode": {"max_len": 12},
        },
    )


def in_child(body) -> int:
    """Run ``body`` in a forked child; its wait status."""
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            body()
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    return pid


def run_step(cfg, run: Path, kill_at_write: int | None = None) -> None:
    """One attempt: resume the run if it has a config, else start it."""
    if kill_at_write is not None:
        calls = iter(range(1, 10**9))

        def hook(what: str) -> None:
            if next(calls) == kill_at_write:
                os.kill(os.getpid(), signal.SIGKILL)

        atomic.fault_hook = hook
    if (run / "config.yaml").exists():
        train(out=run, resume=True)
    else:
        train(cfg, run)


def finished_like(run: Path, ref: Path) -> dict[str, bool]:
    a, b = (load_file(str(r / "last" / "model.safetensors")) for r in (run, ref))
    rows = [
        [
            {k: v for k, v in json.loads(x).items() if k != "seconds"}
            for x in (r / "metrics.jsonl").read_text().splitlines()
            if '"valid"' in x
        ]
        for r in (run, ref)
    ]
    held = {os.readlink(run / "last"), os.readlink(run / "best")}
    extra = [p for p in run.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    extra = [p for p in extra if p != run / ".lock"]  # the run's lock file stays (rundir.py)
    extra += [p for p in (run / "ckpt").iterdir() if f"ckpt/{p.name}" not in held]
    return {
        "weights": a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a),
        "metrics": rows[0] == rows[1],
        "best": os.readlink(run / "best") == os.readlink(ref / "best"),
        "clean": not extra,
    }


def until_done(cfg, run: Path, kill_after: float | None, stats: dict) -> None:
    """Attempts on ``run`` until one finishes; each killed after ``kill_after`` seconds
    (random in [0, kill_after]) when given."""
    while True:
        pid = in_child(lambda: run_step(cfg, run))
        if kill_after is not None:
            time.sleep(random.uniform(0, kill_after))
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            stats["random_kills"] += 1
            continue
        if os.WEXITSTATUS(status) != 0:
            raise SystemExit(f"{run}: an attempt failed (exit {os.WEXITSTATUS(status)})")
        return


def main() -> None:
    p = make_parser(__doc__)
    p.add_argument("--kills", type=int_at_least(1), default=120, help="total SIGKILLs (at least)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    random.seed(args.seed)
    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = make_config(tmp, args.seed)
        writes: list[str] = []
        atomic.fault_hook = writes.append
        train(cfg, tmp / "ref")
        atomic.fault_hook = None
        t0 = time.perf_counter()  # a forked run's time (the first one paid for lazy imports)
        os.waitpid(in_child(lambda: train(cfg, tmp / "timed")), 0)
        ref_seconds = time.perf_counter() - t0
        stats = {"write_kills": 0, "random_kills": 0, "runs": 0}
        failures: dict[str, int] = {"weights": 0, "metrics": 0, "best": 0, "clean": 0}
        n = 0
        while stats["write_kills"] + stats["random_kills"] < args.kills:
            n += 1
            run = tmp / f"run{n}"
            k = n if n <= len(writes) else None
            if k is not None:  # phase 1: the k-th write of the run
                pid = in_child(lambda run=run, k=k: run_step(cfg, run, k))
                _, status = os.waitpid(pid, 0)
                if not os.WIFSIGNALED(status):
                    raise SystemExit(f"write {k} did not kill the run (status {status})")
                stats["write_kills"] += 1
                until_done(cfg, run, None, stats)
            else:  # phase 2: random moments, again and again until the run completes
                until_done(cfg, run, 1.3 * ref_seconds + 0.3, stats)
            stats["runs"] += 1
            for key, ok in finished_like(run, tmp / "ref").items():
                failures[key] += not ok
    print(
        json.dumps(
            {
                "kills": stats["write_kills"] + stats["random_kills"],
                **stats,
                "writes_per_run": len(writes),
                "distinct_writes": sorted(set(writes)),
                "runs_not_bit_identical": failures["weights"],
                "runs_metrics_differ": failures["metrics"],
                "runs_best_differs": failures["best"],
                "runs_with_leftovers": failures["clean"],
                "reference_seconds": round(ref_seconds, 2),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
