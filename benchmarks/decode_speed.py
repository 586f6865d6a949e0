"""Decoding speed of a word-level model: greedy vs beam 5, one sentence at a time vs 64.

Decodes Multi30k test_2016_flickr (1,000 German sentences) with the model in ``--model``
(trained first from ``configs/multi30k_de_en_word_rnn.yaml`` when that directory does not
exist) and prints one JSON line: per setting sentences/s, target tokens/s, seconds, BLEU and
chrF against the raw references, and peak memory. Each setting runs in its own fresh
process, so ``peak_rss_mib`` is that process's ``ru_maxrss`` (model and data included) and
``rss_increase_mib`` is how far decoding raised it above the level after loading.

    python benchmarks/decode_speed.py                          # runs/multi30k_word
    python benchmarks/decode_speed.py --model runs/other --threads 1
    python benchmarks/decode_speed.py --only beam5_b64,greedy_b64 --precision bf16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from transduce.config import data_root, load_config
from transduce.data.corpus import read_lines
from transduce.metrics import bleu_chrf
from transduce.train import train
from transduce.translate import DecodeOptions, Translator

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "multi30k_de_en_word_rnn.yaml"
SETTINGS = {"greedy_b1": (1, 1), "greedy_b64": (1, 64), "beam5_b1": (5, 1), "beam5_b64": (5, 64)}
WARMUP = 32  # sentences decoded with the same options before the clock starts


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_set() -> tuple[list[str], list[str]]:
    folder = data_root() / "multi30k"
    src = read_lines(folder / "test_2016_flickr.de.gz")
    ref = read_lines(folder / "test_2016_flickr.en.gz")
    return src, ref


def measure(model_dir: str, setting: str, threads: int, precision: str = "fp32") -> dict:
    """Decode the test set with one setting; runs in a fresh process (see ``--child``)."""
    if threads:
        torch.set_num_threads(threads)
    bf16 = precision == "bf16"
    autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
    beam, batch_size = SETTINGS[setting]
    translator = Translator.load(model_dir)
    src, ref = test_set()
    baseline = rss_mib()
    options = DecodeOptions(beam=beam, batch_size=batch_size, attention=False)
    with autocast:
        translator.translate_full(src[:WARMUP], options)
        start = time.perf_counter()
        outputs = translator.translate_full(src, options)
        seconds = time.perf_counter() - start
    tokens = sum(len(o.out_tokens) for o in outputs)
    scores = bleu_chrf([o.text for o in outputs], ref)
    return {
        "sentences_per_s": round(len(src) / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
        "seconds": round(seconds, 2),
        "out_tokens": tokens,
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "peak_rss_mib": round(rss_mib(), 1),
        "rss_increase_mib": round(rss_mib() - baseline, 1),
        "threads": torch.get_num_threads(),
        "bleu_signature": scores["bleu_signature"],
    }


def run_child(model_dir: str, setting: str, threads: int, precision: str) -> dict:
    command = [sys.executable, __file__, "--model", model_dir, "--threads", str(threads),
               "--precision", precision]  # fmt: skip
    done = subprocess.run([*command, "--child", setting], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"decode_speed: setting {setting} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/multi30k_word", help="run directory")
    parser.add_argument("--config", default=str(RECIPE), help="recipe to train when missing")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--only", default=",".join(SETTINGS),
                        help="comma-separated settings to run (default: all)")  # fmt: skip
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: decode under CPU bf16 autocast")  # fmt: skip
    parser.add_argument("--child", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.model, args.child, args.threads, args.precision)))
        return
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SETTINGS))
    if unknown or not chosen:
        parser.error(f"--only: unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    if not (Path(args.model) / "config.yaml").exists():
        print(f"decode_speed: {args.model} not found; training it from {args.config}",
              file=sys.stderr)  # fmt: skip
        train(load_config(args.config), args.model)
    results = {name: run_child(args.model, name, args.threads, args.precision) for name in chosen}
    signature = results[chosen[0]].pop("bleu_signature")
    threads = results[chosen[0]]["threads"]
    for r in results.values():
        r.pop("bleu_signature", None)
        r.pop("threads")
    ratio = None
    if "beam5_b64" in results and "greedy_b64" in results:
        ratio = round(results["beam5_b64"]["seconds"] / results["greedy_b64"]["seconds"], 2)
    record = {
        "model": args.model,
        "test": "multi30k test_2016_flickr de->en",
        "n": len(test_set()[0]),
        **results,
        "beam5_over_greedy_seconds_b64": ratio,
        "memory": "peak_rss_mib: ru_maxrss of a fresh process per setting; "
        "rss_increase_mib: above its level after loading model and data",
        "bleu_signature": signature,
        "threads": threads,
        "precision": args.precision,
        "torch": torch.__version__,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    sys.exit(main())
