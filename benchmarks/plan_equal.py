"""The batch plans of an older ``transduce/data/batches.py`` and of the current code on
Multi30k's training pairs (word lengths): identical index arrays in the same order for
every setting, or the first setting that differs. Prints ONE JSON line (exit status 1 when
the plans differ); the same in words on stderr.

    git show 226b069^1:transduce/data/batches.py > /tmp/batches_old.py
    python benchmarks/plan_equal.py /tmp/batches_old.py

A batch plan is a pure function of the pairs' lengths, the seed and the epoch, so equal
plans with the same model code mean the same training, update for update.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

from transduce.data.batches import ParallelData


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", help="an older transduce/data/batches.py")
    p.add_argument("--data", default=os.environ.get("TRANSDUCE_DATA", "../shared/data"))
    args = p.parse_args()
    if not Path(args.old).is_file():
        p.error(f"{args.old}: no such file (git show 226b069^1:transduce/data/batches.py > FILE)")
    for lang in ("de", "en"):
        if not (Path(args.data) / "multi30k" / f"train.{lang}.gz").is_file():
            p.error(f"--data {args.data}: no multi30k/train.{lang}.gz there (TRANSDUCE_DATA)")
    spec = importlib.util.spec_from_file_location("old_batches", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    sides = []
    for lang in ("de", "en"):
        with gzip.open(Path(args.data) / "multi30k" / f"train.{lang}.gz", "rt") as f:
            sides.append([[1] * len(line.split()) for line in f])
    a, b = old.ParallelData(*sides), ParallelData(*sides)
    settings = itertools.product(
        (64, 80), (None, 4096), ("source", "target"), (1, 2), (0, 1, 2), (True, False)
    )
    record = {"benchmark": "plan_equal", "old": args.old}
    n = 0
    for bs, tokens, by, world, epoch, bucket in settings:
        for rank in range(world):
            pa = a.batch_order(bs, 1, epoch, bucket, True, rank, world, tokens, by)
            pb = b.batch_order(bs, 1, epoch, bucket, True, rank, world, tokens, by)
            same = len(pa) == len(pb) and all(
                np.array_equal(x, y) for x, y in zip(pa, pb, strict=False)
            )
            if not same:
                where = {
                    "batch_size": bs,
                    "max_tokens": tokens,
                    "by": by,
                    "rank": rank,
                    "world": world,
                    "epoch": epoch,
                    "bucket": bucket,
                }
                print(f"differ: {where}", file=sys.stderr)
                print(json.dumps({**record, "identical": False, "first_difference": where}))
                return 1
            n += len(pa)
    print(f"identical: {n} batches over {len(a)} pairs", file=sys.stderr)
    print(json.dumps({**record, "identical": True, "batches": n, "pairs": len(a)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
