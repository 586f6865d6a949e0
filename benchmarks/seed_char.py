"""The seeds' character-level English -> Greek recipe, timed and scored.

Trains ``configs/tatoeba_char_ell.yaml`` (first 10,000 lines of Tatoeba ell.txt, LSTM 256,
state passing, batch 64, RMSprop, 10 epochs) and prints one JSON line: seconds per epoch
(median; an epoch includes the teacher-forced validation pass, as Keras's does), validation
token accuracy over real target tokens (the characters and the end of sentence, no
padding), and the time to greedy-decode the first 100 training inputs (batched, and one
sentence at a time as the Keras example does) — the inputs the Keras peer decodes.

    python benchmarks/seed_char.py                  # the recipe as written
    python benchmarks/seed_char.py --keras-split    # validation = last 20%, like validation_split
    python benchmarks/seed_char.py --keras-split --threads 1
Compare with ``benchmarks/peers/keras_seed_char.py`` run on the same machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_cli import run

from transduce.config import load_config
from transduce.data.pipeline import load_texts
from transduce.inference.translate import Translator
from transduce.tasks.train import train

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tatoeba_char_ell.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(RECIPE))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--keras-split", action="store_true", help="validation = last 20%%")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (train.threads)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    # fp32 like Keras' default policy (--set train.precision=auto: bf16 where it pays)
    fixed = ["train.valid_exact=false", "train.progress=false", "train.log_every=0"]
    overrides = [*fixed, "train.precision=fp32", *args.set]
    if args.threads is not None:
        overrides.append(f"train.threads={args.threads}")
    if args.epochs:
        overrides.append(f"train.epochs={args.epochs}")
    if args.keras_split:
        overrides.append("data.split=tail")
    cfg = load_config(args.config, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(cfg, Path(tmp) / "run")
        stamps = [0.0] + [h["seconds"] for h in result.history]
        epoch_seconds = [round(b - a, 2) for a, b in itertools.pairwise(stamps)]
        translator = Translator.load(Path(tmp) / "run", checkpoint="last")
        texts = load_texts(cfg.data)
        first = texts.train_src[:100]  # with --keras-split: the file's first 100 lines
        start = time.perf_counter()
        translator.translate(first)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        for line in first:
            translator.translate([line])
        one_by_one = time.perf_counter() - start
        example = translator.translate(["I am hungry."])[0]
    last = result.history[-1]
    print(
        json.dumps(
            {
                "recipe": Path(args.config).name,
                "split": cfg.data.split,
                "epochs": cfg.train.epochs,
                "seconds_per_epoch_median": round(statistics.median(epoch_seconds), 2),
                "epoch_seconds": epoch_seconds,
                "val_acc_nonpad": round(last["acc"], 4),
                "val_loss": round(last["loss"], 4),
                "decoded": len(first),
                "decode_100_seconds_batched": round(batched, 3),
                "decode_100_seconds_one_by_one": round(one_by_one, 3),
                "example": {"I am hungry.": example},
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    run(main)
