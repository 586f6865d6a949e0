"""Quality guard for bf16 training: the same recipe, seed and number of updates in fp32 and
bf16 autocast, then sacreBLEU of both on the same test set.

``train.precision: auto`` trains in bf16 on CPUs with AVX512-BF16 (for models at least 256
wide) or AMX, and on CUDA devices with bf16 (``transduce/device.py``); this benchmark is the
check that it costs no quality. Each precision trains with ``transduce train`` for
``--updates`` updates (``train.max_steps``), one process per precision, pinned each to its
own core with one thread (``--side-by-side``, the default on a machine with two cores or more;
speed is not measured here, only quality; ``benchmarks/train_speed.py --precision`` times
it), and is scored with ``transduce evaluate`` (greedy, best checkpoint). ``--seeds 1 2``
repeats the pair with other seeds, so the fp32/bf16 difference can be set against the
difference two fp32 seeds make. Prints ONE JSON line.

    python benchmarks/precision_guard.py                                 # the OpenNMT-py model
    python benchmarks/precision_guard.py --config configs/multi30k_en_de_transformer_tiny.yaml \\
        --src multi30k/test_2016_flickr.en.gz --ref multi30k/test_2016_flickr.de.gz
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_cli import int_at_least
from bench_cli import parser as make_parser
from bench_cli import run as run_script

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "benchmarks" / "peers" / "multi30k_gru_input_feed.yaml"
DATA = Path(os.environ.get("TRANSDUCE_DATA", ROOT.parent / "shared" / "data"))


def train(config: str, out: Path, precision: str, updates: int, seed: int, core: int | None):
    """``transduce train`` for ``updates`` updates in ``precision`` (a Popen)."""
    cmd = [sys.executable, "-m", "transduce", "train", config, "--out", str(out), "--threads", "1"]
    for key, value in (("max_steps", updates), ("precision", precision), ("seed", seed)):
        cmd += ["--set", f"train.{key}={value}"]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    log = (out.parent / f"{out.name}.log").open("w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def failed(precision: str, run: Path) -> str:
    """A failed training's message with the tail of its log (the log is in a temporary
    folder that is gone once the script ends)."""
    log = run.parent / f"{run.name}.log"
    tail = log.read_text(errors="replace")[-2000:] if log.is_file() else "(no log)"
    return f"precision_guard: training {precision} failed; the end of its log:\n{tail}"


def score(run: Path, src: Path, ref: Path) -> dict:
    """Greedy sacreBLEU of ``run``'s best checkpoint (``transduce evaluate``'s JSON line)."""
    cmd = [sys.executable, "-m", "transduce", "evaluate", "--model", str(run), "--threads", "1"]
    proc = subprocess.run(
        [*cmd, "--src", str(src), "--ref", str(ref)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"evaluate {run} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def last_valid_loss(run: Path) -> float | None:
    """The loss of the run's last validation (``metrics.jsonl``)."""
    path = run / "metrics.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    losses = [r["loss"] for r in rows if r.get("split") == "valid"]
    return round(losses[-1], 4) if losses else None


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--updates", type=int_at_least(1), default=1500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--src", default="multi30k/test_2016_flickr.de.gz", help="under the data")
    parser.add_argument("--ref", default="multi30k/test_2016_flickr.en.gz", help="under the data")
    parser.add_argument("--sequential", action="store_true", help="one training at a time")
    args = parser.parse_args()
    for flag, path in (("--config", ROOT / args.config), ("--src", DATA / args.src)):
        if not path.is_file():
            parser.error(f"{flag}: {path}: no such file")
    if not (DATA / args.ref).is_file():
        parser.error(f"--ref: {DATA / args.ref}: no such file")
    side = not args.sequential and (os.cpu_count() or 1) >= 2
    results = []
    with tempfile.TemporaryDirectory(prefix="precision_guard.") as tmp:
        for seed in args.seeds:
            start, runs = time.perf_counter(), {}
            procs = []
            for core, precision in enumerate(("fp32", "bf16")):
                runs[precision] = Path(tmp) / f"{precision}_seed{seed}"
                proc = train(
                    args.config,
                    runs[precision],
                    precision,
                    args.updates,
                    seed,
                    core if side else None,
                )
                if not side and proc.wait():  # its log goes with the temporary folder
                    raise SystemExit(failed(precision, runs[precision]))
                procs.append((precision, proc))
            for precision, proc in procs:
                if proc.wait():
                    raise SystemExit(failed(precision, runs[precision]))
            row = {"seed": seed, "train_wall_s": round(time.perf_counter() - start, 1)}
            for precision, run in runs.items():
                scored = score(run, DATA / args.src, DATA / args.ref)
                row[precision] = {"bleu": scored.get("bleu"), "valid_loss": last_valid_loss(run)}
            row["bleu_diff"] = round(row["bf16"]["bleu"] - row["fp32"]["bleu"], 2)
            results.append(row)
    print(
        json.dumps(
            {
                "benchmark": "precision_guard",
                "config": os.path.relpath(args.config, ROOT),
                "updates": args.updates,
                "test": [args.src, args.ref],
                "decoding": "greedy, best checkpoint",
                "runs": results,
                "max_abs_bleu_diff": max(abs(r["bleu_diff"]) for r in results),
            }
        )
    )
    return 0


if __name__ == "__main__":
    run_script(main)
