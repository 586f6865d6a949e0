"""Terminology constraints on Multi30k en->de: coverage, BLEU and time against plain beam 5.

Each test sentence (test_2016_flickr, the first ``--limit``) gets one dictionary term drawn
from its reference: the longest reference word (4 letters or more) that the model's target
vocabulary knows, as a terminology dictionary hit would be. Beam search of width 5 decodes
the set without and with the terms (dynamic beam allocation, Post & Vilar 2018), alternated
``--rounds`` times; one JSON line reports the share of outputs containing their term, BLEU
and chrF of both, and the median seconds of each with their ratio.

The model is ``--model``; when that directory does not exist a small word-level transformer
is trained first for ``--train-seconds`` (a brief, unconverged model: the figures compare
decoding with and without terms on the same model, not the model's quality).

    python benchmarks/constraints.py                       # runs/m30k_en_de_terms
    python benchmarks/constraints.py --model runs/other --limit 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench_cli import run

from transduce.config import data_root, load_config
from transduce.data.corpus import read_lines
from transduce.inference.translate import DecodeOptions, Translator
from transduce.metrics import bleu_chrf
from transduce.tasks.train import train

RECIPE = Path(__file__).resolve().parents[1] / "transduce" / "configs"
SMALL = [  # the tiny transformer recipe, word-level and smaller, for a brief CPU run
    "data.src_tokenizer=word",
    "data.tgt_tokenizer=word",
    "data.joint_vocab=false",
    "data.min_freq=2",
    "model.transformer.d_model=128",
    "model.transformer.encoder_layers=2",
    "model.transformer.decoder_layers=2",
    "model.transformer.dropout=0.1",
    "train.warmup_steps=300",
    "train.max_tokens=1500",
    "train.lr=0.002",
    "train.valid_bleu=false",
    "train.early_stop_metric=loss",
    "train.keep_checkpoints=0",
    "train.threads=1",
    "decode.batch_size=64",
]


def ensure_model(model: Path, seconds: float) -> None:
    if (model / "model.safetensors").is_file():
        return
    overrides = [*SMALL, f"train.max_seconds={seconds}"]
    cfg = load_config(RECIPE / "multi30k_en_de_transformer_tiny.yaml", overrides)
    train(cfg, model)


def term_of(reference: str, translator: Translator) -> str | None:
    """The longest reference word (>= 4 letters) in the target vocabulary; None if none."""
    tok, vocab = translator.pipeline.tgt_tok, translator.pipeline.tgt_vocab
    words = [w for w in reference.split() if len(w.strip(".,;:!?\"'")) >= 4]
    known = [w.strip(".,;:!?\"'") for w in words]
    known = [w for w in known if all(t in vocab.stoi for t in tok.encode(w))]
    return max(known, key=len) if known else None


def contains(tokens: list[str], phrase: list[str]) -> bool:
    return any(tokens[i : i + len(phrase)] == phrase for i in range(len(tokens) + 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="runs/m30k_en_de_terms")
    p.add_argument("--train-seconds", type=float, default=280)
    p.add_argument("--limit", type=int, default=500, help="test sentences (of 1,000)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    ensure_model(Path(args.model), args.train_seconds)
    translator = Translator.load(args.model)
    folder = data_root() / "multi30k"
    src = read_lines(folder / "test_2016_flickr.en.gz")[: args.limit]
    ref = read_lines(folder / "test_2016_flickr.de.gz")[: args.limit]
    terms = [term_of(r, translator) for r in ref]
    keep = [i for i, t in enumerate(terms) if t]
    src, ref, terms = [src[i] for i in keep], [ref[i] for i in keep], [terms[i] for i in keep]
    constraints = [[t] for t in terms]
    options = DecodeOptions(beam=5, batch_size=64)
    seconds: dict[str, list[float]] = {"plain": [], "constrained": []}
    out: dict[str, list] = {}
    for _ in range(args.rounds):  # alternated, so load on the shared machine hits both
        for name, cons in (("plain", None), ("constrained", constraints)):
            start = time.perf_counter()
            out[name] = translator.translate_full(src, options, constraints=cons)
            seconds[name].append(time.perf_counter() - start)
    tok = translator.pipeline.tgt_tok
    covered = {
        name: sum(contains(o.out_tokens, tok.encode(t)) for o, t in zip(res, terms, strict=True))
        for name, res in out.items()
    }
    median = {k: statistics.median(v) for k, v in seconds.items()}
    report = {
        "model": args.model,
        "sentences": len(src),
        "skipped_no_term": args.limit - len(src),
        "beam": 5,
        "term_coverage": {k: round(v / len(src), 4) for k, v in covered.items()},
        "bleu_chrf": {k: bleu_chrf([o.text for o in v], ref) for k, v in out.items()},
        "median_seconds": {k: round(v, 2) for k, v in median.items()},
        "time_ratio": round(median["constrained"] / median["plain"], 2),
        "rounds": args.rounds,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    run(main)
