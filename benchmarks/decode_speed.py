r"""Decoding speed of a word-level model: greedy vs beam 5, one sentence at a time vs 64.

Decodes Multi30k test_2016_flickr (1,000 German sentences) with the model in ``--model``
(trained first from ``configs/multi30k_de_en_word_rnn.yaml`` when that directory does not
exist) and prints one JSON line: per setting sentences/s, target tokens/s, seconds, BLEU and
chrF against the raw references, and peak memory. Each setting runs in its own fresh
process, so ``peak_rss_mib`` is that process's ``ru_maxrss`` (model and data included) and
``rss_increase_mib`` is how far decoding raised it above the level after loading.

Engines: ``--engines torch,onnx,ct2`` with ``--export onnx=DIR,ct2=DIR`` (directories
written by ``transduce export``) decodes with each engine in turn, ``--rounds`` times
alternated (A/B/A/B), and adds per engine the median seconds, the speed-up over torch and
the share of sentences whose output is identical to torch's; the same from each process's
CPU time (``cpu_*``), which a busy machine disturbs less than the wall clock.
``--cold-start DIR`` times the PyTorch-free runtime instead (import, load, first sentence,
in fresh processes).

    python benchmarks/decode_speed.py                          # runs/multi30k_word
    python benchmarks/decode_speed.py --model runs/other --threads 1
    python benchmarks/decode_speed.py --only beam5_b64,greedy_b64 --precision bf16
    python benchmarks/decode_speed.py --model runs/multi30k_word --only beam5_b64 \
        --engines torch,onnx --export onnx=exported/word --rounds 3 --threads 2
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
from bench_cli import int_at_least, run
from bench_cli import parser as make_parser

from transduce.config import data_root, load_config
from transduce.data.corpus import read_lines
from transduce.inference.translate import DecodeOptions, Translator
from transduce.metrics import bleu_chrf
from transduce.tasks.train import train

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "multi30k_de_en_word_rnn.yaml"
SETTINGS = {"greedy_b1": (1, 1), "greedy_b64": (1, 64), "beam5_b1": (5, 1), "beam5_b64": (5, 64)}
ENGINES = ("torch", "onnx", "ct2")
WARMUP = 32  # sentences decoded with the same options before the clock starts


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def direction(model_dir: str) -> str:
    """``de-en`` or ``en-de``: the run's own direction, read from its training source file
    (``train.en.gz`` -> en-de); ``de-en`` where that is not a Multi30k run."""
    config = Path(model_dir, "config.yaml")
    if config.is_file() and load_config(config).data.train_src.endswith(".en.gz"):
        return "en-de"
    return "de-en"


def test_set(pair: str = "de-en") -> tuple[list[str], list[str]]:
    folder = data_root() / "multi30k"
    src_lang, tgt_lang = pair.split("-")
    src = read_lines(folder / f"test_2016_flickr.{src_lang}.gz")
    ref = read_lines(folder / f"test_2016_flickr.{tgt_lang}.gz")
    return src, ref


def load(model_dir: str, engine: str, threads: int):
    """The translator of one engine: a run directory for torch, an export for the others."""
    if engine == "torch":
        return Translator.load(model_dir)
    from transduce.loading import load as load_exported

    return load_exported(model_dir, threads=threads)


def measure(
    model_dir: str,
    setting: str,
    threads: int,
    precision: str = "fp32",
    engine: str = "torch",
    pair: str = "de-en",
) -> dict:
    """Decode the test set with one setting; runs in a fresh process (see ``--child``)."""
    if threads:
        torch.set_num_threads(threads)
    bf16 = precision == "bf16"
    autocast = torch.autocast("cpu", torch.bfloat16) if bf16 else contextlib.nullcontext()
    beam, batch_size = SETTINGS[setting]
    translator = load(model_dir, engine, threads)
    src, ref = test_set(pair)
    baseline = rss_mib()
    options = DecodeOptions(beam=beam, batch_size=batch_size, attention=False)
    with autocast:
        translator.translate_full(src[:WARMUP], options)
        start, cpu = time.perf_counter(), time.process_time()
        outputs = translator.translate_full(src, options)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    tokens = sum(len(o.out_tokens) for o in outputs)
    scores = bleu_chrf([o.text for o in outputs], ref)
    return {
        "sentences_per_s": round(len(src) / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # this process's CPU time: steadier on a busy machine
        "out_tokens": tokens,
        "bleu": scores["bleu"],
        "chrf": scores["chrf"],
        "peak_rss_mib": round(rss_mib(), 1),
        "rss_increase_mib": round(rss_mib() - baseline, 1),
        "threads": torch.get_num_threads() if engine == "torch" else threads,
        "bleu_signature": scores["bleu_signature"],
        "outputs": [o.text for o in outputs],
    }


def run_child(
    model_dir: str,
    setting: str,
    threads: int,
    precision: str,
    engine: str = "torch",
    pair: str = "de-en",
) -> dict:
    command = [
        sys.executable,
        __file__,
        "--model",
        model_dir,
        "--threads",
        str(threads),
        "--precision",
        precision,
        "--engine-child",
        engine,
        "--pair",
        pair,
    ]
    done = subprocess.run([*command, "--child", setting], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"decode_speed: setting {setting} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_engines(parser: argparse.ArgumentParser, engines: list[str], export: str) -> dict:
    """``--export``'s ``ENGINE=DIR`` pairs, checked against ``--engines`` before any work:
    a known engine each, and an existing export for every engine but torch."""
    pairs = [pair for pair in export.split(",") if pair]
    if bad := [pair for pair in pairs if "=" not in pair]:
        parser.error(f"--export: expected ENGINE=DIR pairs (onnx=DIR,ct2=DIR), got {bad[0]!r}")
    exports = dict(pair.split("=", 1) for pair in pairs)
    if not engines or (unknown := sorted(set(engines) - set(ENGINES))):
        parser.error(f"--engines: unknown engine(s) {unknown}; choose from {', '.join(ENGINES)}")
    for engine in engines:
        if engine == "torch":
            continue
        if engine not in exports:
            parser.error(
                f"--engines {engine} needs --export {engine}=DIR "
                f"(a directory written by `transduce export {engine}`)"
            )
        if not Path(exports[engine]).is_dir():
            parser.error(f"--export {engine}={exports[engine]}: no such directory")
    return exports


def compare_engines(args, chosen: list[str], engines: list[str], exports: dict) -> dict:
    """Each setting with each engine, ``args.rounds`` times alternated (A/B/A/B in one
    sitting): median seconds, speed-up over torch, BLEU and outputs identical to torch's."""
    dirs = {e: args.model if e == "torch" else exports[e] for e in engines}
    runs: dict = {e: {name: [] for name in chosen} for e in engines}
    for _ in range(args.rounds):
        for name in chosen:
            for e in engines:
                runs[e][name].append(run_child(dirs[e], name, args.threads, "fp32", e, args.pair))
    out: dict = {}
    for e in engines:
        for name in chosen:
            rs = runs[e][name]
            secs = sorted(r["seconds"] for r in rs)
            cpu = sorted(r["cpu_seconds"] for r in rs)
            ref = runs["torch"][name][0]["outputs"] if "torch" in runs else None
            same = None
            if ref is not None:
                same = sum(a == b for a, b in zip(rs[0]["outputs"], ref, strict=True))
            out.setdefault(e, {})[name] = {
                "seconds_median": secs[len(secs) // 2],
                "seconds_all": secs,
                "cpu_seconds_median": cpu[len(cpu) // 2],
                "sentences_per_s": round(len(rs[0]["outputs"]) / secs[len(secs) // 2], 1),
                "bleu": rs[0]["bleu"],
                "chrf": rs[0]["chrf"],
                "out_tokens": rs[0]["out_tokens"],
                "identical_to_torch": same,
                "peak_rss_mib": rs[0]["peak_rss_mib"],
            }
            if "torch" in out and e != "torch":
                base = out["torch"][name]["seconds_median"]
                out[e][name]["speedup_over_torch"] = round(base / secs[len(secs) // 2], 2)
                base_cpu = out["torch"][name]["cpu_seconds_median"]
                out[e][name]["cpu_speedup_over_torch"] = round(base_cpu / cpu[len(cpu) // 2], 2)
    return {
        "engines": out,
        "exports": dirs,
        "rounds": args.rounds,
        "signature": runs[engines[0]][chosen[0]][0]["bleu_signature"],
    }


COLD = """
import time; t0 = time.perf_counter()
import sys
from transduce.loading import load
t = load(sys.argv[1], threads=1)
t.translate(["Ein Mann fährt Fahrrad."])
print(time.perf_counter() - t0, "torch" in sys.modules)
"""


def cold_start(export_dir: str, runs: int = 5) -> dict:
    """Fresh-process cold start of the PyTorch-free runtime (import, load, first sentence)
    and the installed size of what it needs beside torch's."""
    import importlib.util

    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", COLD, export_dir], capture_output=True, text=True, check=True
        )
        seconds, torch_loaded = done.stdout.split()
        times.append(round(float(seconds), 3))
        assert torch_loaded == "False"

    def size(module: str) -> float:
        """MiB of the package folder and of its bundled libraries (``NAME.libs``)."""
        root = Path(importlib.util.find_spec(module).origin).parent
        folders = [root, root.with_name(f"{module}.libs")]
        files = [f for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file()]
        return round(sum(f.stat().st_size for f in files) / 2**20, 1)

    runtime = ["onnxruntime", "numpy", "sentencepiece"]
    return {
        "export": export_dir,
        "cold_start_seconds": sorted(times),
        "cold_start_median": sorted(times)[runs // 2],
        "installed_mib": {m: size(m) for m in [*runtime, "ctranslate2", "torch"]},
        "runtime_mib": round(sum(size(m) for m in runtime), 1),
    }


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--model", default="runs/multi30k_word", help="run directory")
    parser.add_argument("--config", default=str(RECIPE), help="recipe to train when missing")
    parser.add_argument(
        "--threads", type=int_at_least(0), default=0, help="torch threads (0: default)"
    )
    parser.add_argument(
        "--only", default=",".join(SETTINGS), help="comma-separated settings to run (default: all)"
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16: decode under CPU bf16 autocast",
    )
    parser.add_argument("--engines", default="torch", help="e.g. torch,onnx,ct2")
    parser.add_argument("--export", default="", help="onnx=DIR,ct2=DIR: exported models")
    parser.add_argument(
        "--rounds", type=int_at_least(1), default=1, help="alternated repeats per engine"
    )
    parser.add_argument("--cold-start", metavar="DIR", help="time the runtime on export DIR")
    parser.add_argument(
        "--pair",
        choices=["auto", "de-en", "en-de"],
        default="auto",
        help="de-en or en-de test set (auto: the run's direction)",
    )
    parser.add_argument("--child", choices=sorted(SETTINGS), help=argparse.SUPPRESS)
    parser.add_argument("--engine-child", default="torch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pair == "auto":
        args.pair = direction(args.model)
    if args.child:
        print(
            json.dumps(
                measure(
                    args.model,
                    args.child,
                    args.threads,
                    args.precision,
                    args.engine_child,
                    args.pair,
                )
            )
        )
        return
    if args.cold_start:
        print(json.dumps(cold_start(args.cold_start)))
        return
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SETTINGS))
    if unknown or not chosen:
        parser.error(f"--only: unknown setting(s) {unknown}; choose from {', '.join(SETTINGS)}")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    exports = check_engines(parser, engines, args.export)
    if not (Path(args.model) / "config.yaml").exists():
        print(
            f"decode_speed: {args.model} not found; training it from {args.config}", file=sys.stderr
        )
        train(load_config(args.config), args.model)
    if engines != ["torch"]:
        record = {
            "model": args.model,
            "test": f"multi30k test_2016_flickr {args.pair}",
            **compare_engines(args, chosen, engines, exports),
            "threads": args.threads,
            "torch": torch.__version__,
        }
        print(json.dumps(record))
        return
    results = {
        name: run_child(args.model, name, args.threads, args.precision, "torch", args.pair)
        for name in chosen
    }
    signature = results[chosen[0]].pop("bleu_signature")
    threads = results[chosen[0]]["threads"]
    for r in results.values():
        r.pop("bleu_signature", None)
        r.pop("threads")
        r.pop("outputs")
    ratio = None
    if "beam5_b64" in results and "greedy_b64" in results:
        ratio = round(results["beam5_b64"]["seconds"] / results["greedy_b64"]["seconds"], 2)
    record = {
        "model": args.model,
        "test": f"multi30k test_2016_flickr {args.pair}",
        "n": len(test_set(args.pair)[0]),
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
    run(main)
