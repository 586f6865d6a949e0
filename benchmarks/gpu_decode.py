"""Decoding speed on one device for the torch, ONNX and CTranslate2 engines (gpu_check.sh's
decode stage): Multi30k test_2016_flickr in the run's direction (en->de or de->en, read from
its config as ``decode_speed.py`` reads it), greedy and beam 5 at batch 64, one JSON line.

Every engine opens the model on ``--device`` as ``transduce translate --device`` does
(onnxruntime's CUDA execution provider under the runtime's numpy search; CTranslate2's own
GPU search). An engine that cannot run on the device here (no CUDA provider in this
onnxruntime build, a CTranslate2 that sees no GPU) is listed under ``skipped`` with the
one-line reason the commands give. ``benchmarks/decode_speed.py`` remains the CPU
benchmark.

    python benchmarks/gpu_decode.py --model RUN --export onnx=DIR,ct2=DIR --device cuda
"""

from __future__ import annotations

import json
import time

import torch
from bench_cli import int_at_least, run
from bench_cli import parser as make_parser
from decode_speed import direction, test_set

from transduce import loading
from transduce.inference.decoding import DecodeOptions
from transduce.metrics import bleu_chrf

SETTINGS = {"greedy_b64": (1, 64), "beam5_b64": (5, 64)}


def measure(engine: str, folder: str, device: str, limit: int, pair: str) -> dict:
    src, ref = (side[:limit] for side in test_set(pair))
    translator = loading.load(folder, engine, device=device, threads=1)
    out = {}
    for name, (beam, batch) in SETTINGS.items():
        options = DecodeOptions(beam=beam, batch_size=batch, attention=False)
        translator.translate_full(src[:32], options)  # warm-up (kernels, allocator)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        outputs = translator.translate_full(src, options)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        texts = [o.text for o in outputs]
        out[name] = {
            "seconds": round(seconds, 3),
            "sentences_per_s": round(len(src) / seconds, 1),
            "bleu": bleu_chrf(texts, ref)["bleu"],
            "outputs": texts,
        }
    return out


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--model", required=True, help="run directory (torch)")
    parser.add_argument("--export", default="", help="onnx=DIR,ct2=DIR")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument(
        "--limit", type=int_at_least(1), default=1000, help="test sentences (max 1,000)"
    )
    args = parser.parse_args()
    pair = direction(args.model)  # the run's own languages: de-en or en-de
    folders = {"torch": args.model, **dict(p.split("=", 1) for p in args.export.split(",") if p)}
    engines, skipped = {}, {}
    for engine, folder in folders.items():
        try:
            engines[engine] = measure(engine, folder, args.device, args.limit, pair)
        except Exception as error:  # an engine that cannot run here: say why, go on
            first = (str(error).splitlines() or [""])[0]
            skipped[engine] = f"{type(error).__name__}: {first[:300]}"
    base = engines.get("torch", {})
    for engine, settings in engines.items():
        for name, r in settings.items():
            if engine != "torch" and name in base:
                r["speedup_over_torch"] = round(base[name]["seconds"] / r["seconds"], 2)
                same = zip(r["outputs"], base[name]["outputs"], strict=True)
                r["identical_to_torch"] = sum(a == b for a, b in same)
    for settings in engines.values():
        for r in settings.values():
            r.pop("outputs")
    record = {
        "benchmark": "gpu_decode",
        "device": args.device,
        "test": f"multi30k test_2016_flickr {pair}",
        "sentences": args.limit,
    }
    print(json.dumps({**record, "engines": engines, "skipped": skipped}))


if __name__ == "__main__":
    run(main)
