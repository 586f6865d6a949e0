"""Does a trained QA model use both of its inputs? Exact match and token F1 on the test
file as is, with every question blanked, and with every document blanked.

A blanked field is replaced by one unknown word (``<unk>``), so the packed input keeps its
shape and only the information goes. Prints one JSON line.

    python benchmarks/qa_ablation.py --model runs/qa --data runs/qa-data/test.jsonl
"""

from __future__ import annotations

import json

import torch
from bench_cli import int_at_least, run
from bench_cli import parser as make_parser

from transduce.config import data_path
from transduce.data.pipeline import read_split
from transduce.data.records import FIELD_SEP, split_fields
from transduce.inference.translate import DecodeOptions, Translator
from transduce.metrics import squad_scores

BLANK = "\u2205"  # not in any vocabulary: encodes as <unk>


def blank(sources: list[str], field: int, n: int) -> list[str]:
    out = []
    for text in sources:
        fields = split_fields(text, n)
        fields[field] = BLANK
        out.append(FIELD_SEP.join(fields))
    return out


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--model", default="runs/qa")
    parser.add_argument("--data", default="runs/qa-data/test.jsonl")
    parser.add_argument("--beam", type=int_at_least(1), default=1)
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model)
    names = translator.cfg.data.src_fields
    data = read_split(translator.cfg.data, str(data_path(args.data)))
    options = DecodeOptions(beam=args.beam, attention=False)
    result = {
        "model": args.model,
        "n": len(data),
        "beam": args.beam,
        "fusion": translator.cfg.model.fusion.mode,
    }
    result["full"] = squad_scores(translator.translate(data.src, options), data.tgt)
    for i, name in enumerate(names):
        hyps = translator.translate(blank(data.src, i, len(names)), options)
        result[f"no_{name}"] = squad_scores(hyps, data.tgt)
    print(json.dumps(result))


if __name__ == "__main__":
    run(main)
