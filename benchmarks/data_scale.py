"""Training on a large corpus: what a prepared store costs and saves, at N pairs.

Builds a synthetic corpus of N pairs from Multi30k en-de (the 29k pairs repeated, every
repetition with two words of each line swapped, seeded) in a temporary folder, then with
the tiny transformer recipe (configs/multi30k_en_de_transformer_tiny.yaml) reports, as one
JSON line per N:

- ``transduce prepare`` wall and CPU seconds with 1 and 2 workers (and whether the two
  stores are byte-identical), the store's size on disk;
- ``transduce train`` on the store: seconds from the command's start to the end of the first
  update, ``RssAnon`` of the process (from /proc) after 50 updates, target tokens/s over
  updates 10-50; the same for the in-memory path (``data.prepared`` unset) at the first N;
- the same under ``torchrun --nproc_per_node 2`` (RssAnon per rank; tokens of both ranks).

    python benchmarks/data_scale.py --pairs 29000 1000000
    python benchmarks/data_scale.py --pairs 29000 --no-torchrun --keep /tmp/corpora
    python benchmarks/data_scale.py --pairs 10000000 --workers 2   # the 10M targets only
    python benchmarks/data_scale.py --pairs 29000 --workers 1 --rounds 4   # store vs memory

The machine it runs on is part of the result: see docs/guide/large-corpora.md for lscpu.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "multi30k_en_de_transformer_tiny.yaml"
DRIVER = Path(__file__).resolve()


def synthetic(folder: Path, pairs: int, data: Path, seed: int = 0) -> list[str]:
    """N pairs: Multi30k's, then repetitions with two words swapped on each side of each
    line (so every repetition is new text); returns the --set lines naming the files."""
    sides = {}
    for lang in ("en", "de"):
        with gzip.open(data / "multi30k" / f"train.{lang}.gz", "rt", encoding="utf-8") as f:
            sides[lang] = [line.rstrip("\n") for line in f]
    rng = random.Random(seed)
    with open(folder / "train.en", "w") as en, open(folder / "train.de", "w") as de:
        for i in range(pairs):
            k = i % len(sides["en"])
            for lang, out in (("en", en), ("de", de)):
                words = sides[lang][k].split()
                if i >= len(sides[lang]) and len(words) > 1:
                    a, b = rng.sample(range(len(words)), 2)
                    words[a], words[b] = words[b], words[a]
                out.write(" ".join(words) + "\n")
    return [f"data.train_src={folder / 'train.en'}", f"data.train_tgt={folder / 'train.de'}"]


def _cpu_children() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def prepare(sets: list[str], out: Path, workers: int) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "transduce",
        "prepare",
        str(RECIPE),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
        *(f"--set={s}" for s in sets),
    ]
    cpu, start = _cpu_children(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.iterdir())
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(_cpu_children() - cpu, 1),
        "store_mb": round(size / 1e6, 1),
    }


def train(sets: list[str], run: Path, ranks: int = 1) -> list[dict]:
    """The driver below in a fresh process (or ``ranks`` under torchrun): one dict per rank."""
    report = run.with_suffix(".json")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch = [sys.executable] if ranks == 1 else [*torchrun, "--nproc_per_node", str(ranks)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DATA_SCALE_START": repr(time.time())}
    cmd = [*launch, str(DRIVER), "--drive", str(run), str(report), *sets]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in report.read_text().splitlines()]


def drive(run: str, report: str, sets: list[str]) -> None:
    """Inside the training process: ``transduce train`` with a probe on the updates."""
    from transduce.config import load_config
    from transduce.engine.loop import Loop
    from transduce.tasks.train import train as train_run

    start, update, seen = float(os.environ["DATA_SCALE_START"]), Loop.update, {}

    def probe(self, *batches):
        out = update(self, *batches)
        if self.step == 1:
            seen["first_update_s"] = round(time.time() - start, 2)
        if self.step in (10, 50):
            seen[f"t{self.step}"], seen[f"tok{self.step}"] = time.perf_counter(), 0
        if 10 < self.step <= 50:
            seen["tok10"] += out[1]
        if self.step == 50:
            seen["rss_anon_mb"] = _rss_anon_mb()
        return out

    Loop.update = probe
    fixed = [
        "train.max_steps=50",
        "train.valid_every=0",
        "train.progress=false",
        "train.max_seconds=null",
        "train.threads=1",
        "train.warmup_steps=10",
        # the closing validation: loss only (greedy BLEU of 1,014 sentences takes minutes)
        "train.valid_bleu=false",
        "train.early_stop_metric=loss",
        "train.patience=null",
        "train.keep_checkpoints=0",
    ]
    train_run(load_config(RECIPE, [*sets, *fixed]), run)
    rate = seen["tok10"] / (seen["t50"] - seen["t10"])
    row = {
        "rank": int(os.environ.get("RANK", 0)),
        "first_update_s": seen["first_update_s"],
        "rss_anon_mb": seen["rss_anon_mb"],
        "tok_s": round(rate),
    }
    with open(report, "a") as f:
        f.write(json.dumps(row) + "\n")


def _rss_anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def one_size(
    n: int,
    tmp: Path,
    data: Path,
    torchrun: bool,
    in_memory: bool,
    workers_list=(1, 2),
    rounds_n: int = 1,
) -> dict:
    folder = tmp / f"n{n}"
    folder.mkdir()
    sets = synthetic(folder, n, data)
    row: dict = {"pairs": n}
    for workers in workers_list:
        row[f"prepare_{workers}w"] = prepare(sets, folder / f"store{workers}", workers)
    stores = [folder / f"store{w}" for w in workers_list]
    if len(stores) > 1:
        row["stores_identical"] = all(
            (stores[0] / p.name).read_bytes() == p.read_bytes() for p in stores[1].iterdir()
        )
    store = [f"data.prepared={stores[0]}"]
    row["store"] = train([*sets, *store], folder / "run_store")[0]
    if in_memory:
        # store and in-memory alternated (A, B, A, B, ...): a change of the machine's load
        # falls on both; the ratio is that of the two means
        rounds = [(row["store"], train([*sets, "data.prepared="], folder / "run_mem"))]
        for r in range(1, rounds_n):
            a = train([*sets, *store], folder / f"run_store{r}")[0]
            rounds.append((a, train([*sets, "data.prepared="], folder / f"run_mem{r}")))
        row["in_memory"] = rounds[0][1][0]
        store_rate = [a["tok_s"] for a, _ in rounds]
        mem_rate = [b[0]["tok_s"] for _, b in rounds]
        row["rounds_tok_s"] = {"store": store_rate, "in_memory": mem_rate}
        row["store_vs_in_memory"] = round(sum(store_rate) / sum(mem_rate), 3)
    if torchrun:
        row["store_torchrun2"] = train([*sets, *store], folder / "run_ddp", ranks=2)
    for extra in stores[1:]:
        shutil.rmtree(extra)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, nargs="+", default=[29_000, 1_000_000])
    p.add_argument(
        "--data",
        default=os.environ.get("TRANSDUCE_DATA", str(REPO.parent / "shared" / "data")),
        help="the data folder holding multi30k/",
    )
    p.add_argument("--no-torchrun", action="store_true")
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="prepare with each of these worker counts (default 1 2; the first store trains)",
    )
    p.add_argument("--keep", help="build the corpora in this folder and keep them")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="train on the store and in memory this many times, alternated (first size)",
    )
    p.add_argument("--drive", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.drive:
        return drive(args.drive[0], args.drive[1], args.drive[2:])
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        for i, n in enumerate(args.pairs):
            row = one_size(
                # the in-memory comparison: at the first size only, and never past 1M pairs
                # (what the store exists to avoid: every pair as Python objects)
                n,
                tmp,
                Path(args.data),
                not args.no_torchrun,
                i == 0 and n <= 1_000_000,
                tuple(args.workers),
                args.rounds,
            )
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
