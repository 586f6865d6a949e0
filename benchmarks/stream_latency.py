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

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from transduce.data.tasks import date_pairs
from transduce.inference.translate import Translator


def streamed(model: str, lines: list[str]) -> tuple[float, float]:
    """(seconds to the first output line, seconds to the last) after writing ``lines``."""
    cmd = [sys.executable, "-m", "transduce", "-q", "translate", "--model", model]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    proc.stdin.write(b"1 January 2000\n")
    proc.stdin.flush()
    proc.stdout.readline()  # loaded and decoding
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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="runs/demo/run")
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
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
    main()
