"""``translate`` as a filter: how soon the first translation of a piped input comes out, and
the total time against decoding the same lines as one batch.

A ``transduce translate`` process reads a pipe. One warm-up line is written and its
translation awaited (the process has loaded the model); then ``--lines`` lines are written
at once, and the clock measures until the first of their translations and until the last.
The batch figure is ``Translator.translate`` on the same lines in this process, with the
model's ``decode.batch_size``. One JSON line; ``--rounds`` alternated measurements (the
machine is shared: medians).

    transduce demo                                 # runs/demo/run, the date model
    python benchmarks/stream_latency.py            # 1,000 dates
    python benchmarks/stream_latency.py --model runs/demo/run --lines 1000 --rounds 3
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_cli import int_at_least, run
from bench_cli import parser as make_parser

from transduce.data.tasks import date_pairs
from transduce.inference.translate import Translator


def streamed(model: str, lines: list[str]) -> tuple[float, float]:
    """(seconds to the first output line, seconds to the last) after writing ``lines``."""
    cmd = [sys.executable, "-m", "transduce", "-q", "translate", "--model", model]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    proc.stdin.write(b"1 January 2000\n")
    proc.stdin.flush()
    if not proc.stdout.readline():  # loaded and decoding, or it ended (its stderr says why)
        proc.wait()
        raise SystemExit(f"stream_latency: transduce translate exited ({proc.returncode})")
    start = time.perf_counter()
    proc.stdin.write("".join(x + "\n" for x in lines).encode())
    proc.stdin.flush()
    proc.stdout.readline()
    first = time.perf_counter() - start
    for _ in lines[1:]:
        proc.stdout.readline()
    total = time.perf_counter() - start
    proc.stdin.close()
    proc.wait(60)
    return first, total


def main() -> None:
    p = make_parser(__doc__)
    p.add_argument("--model", default="runs/demo/run")
    p.add_argument("--lines", type=int_at_least(1), default=1000)
    p.add_argument("--rounds", type=int_at_least(1), default=3)
    args = p.parse_args()
    if not (Path(args.model) / "config.yaml").is_file():
        p.error(f"--model {args.model}: not a trained run (`transduce demo` makes runs/demo/run)")
    lines = date_pairs(args.lines, seed=5)[0]
    translator = Translator.load(args.model)
    translator.translate(lines[:8])  # warm-up, as the streamed process had its line
    firsts, totals, batches = [], [], []
    for _ in range(args.rounds):
        first, total = streamed(args.model, lines)
        firsts.append(first)
        totals.append(total)
        start = time.perf_counter()
        translator.translate(lines)
        batches.append(time.perf_counter() - start)
    med = {
        k: statistics.median(v)
        for k, v in (("first", firsts), ("stream", totals), ("batch", batches))
    }
    print(
        json.dumps(
            {
                "model": args.model,
                "lines": args.lines,
                "rounds": args.rounds,
                "first_output_s": round(med["first"], 3),
                "stream_total_s": round(med["stream"], 2),
                "batch_total_s": round(med["batch"], 2),
                "stream_over_batch": round(med["stream"] / med["batch"], 3),
                "all": {"first": firsts, "stream": totals, "batch": batches},
            }
        )
    )


if __name__ == "__main__":
    run(main)
