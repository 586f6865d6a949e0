"""Command line: parse, call one public function, print. ``transduce --help`` lists commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from transduce.checkpoint import atomic_write_text
from transduce.config import ConfigError
from transduce.data.corpus import DataError, read_lines

log = logging.getLogger("transduce")


def demo_command(args: argparse.Namespace) -> None:
    from transduce.demo import run_demo

    run_demo(args.out, n_train=args.n_train, seed=args.seed)


def train_command(args: argparse.Namespace) -> None:
    from transduce.config import load_config
    from transduce.train import train

    if args.resume:
        result = train(out=args.out, resume=True, overrides=args.set)
    else:
        if args.config is None:
            raise ConfigError("train: give a CONFIG file (or --resume with --out DIR)")
        cfg = load_config(args.config, args.set)
        out = args.out or str(Path("runs") / Path(args.config).stem)
        result = train(cfg, out)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line (rank 0's)
        print(
            json.dumps({"run_dir": str(result.run_dir), "steps": result.steps, "best": result.best})
        )


def _read_input(path: str | None) -> list[str]:
    if path is None or path == "-":
        return [line.rstrip("\r\n") for line in sys.stdin]
    return read_lines(path)


def _decode_options(args: argparse.Namespace):
    from transduce.translate import DecodeOptions

    return DecodeOptions(
        beam=args.beam, nbest=args.nbest, alpha=args.length_penalty, normalize=args.normalize,
        no_repeat_ngram=args.no_repeat_ngram, sample=args.sample, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, max_len=args.max_len,
        max_len_ratio=args.max_len_ratio, batch_size=args.batch_size,
        attention=args.format == "jsonl",
    )  # fmt: skip


def _jsonl(source: str, hyps) -> str:
    record = {
        "source": source,
        "src_tokens": hyps[0].src_tokens,
        "hypotheses": [
            {
                "text": h.text,
                "score": round(h.score, 6),
                "logprob": round(h.logprob, 6) if h.logprob is not None else None,
                "tokens": h.out_tokens,
                "attention": None if h.attention is None else h.attention.round(4).tolist(),
            }
            for h in hyps
        ],
    }
    return json.dumps(record, ensure_ascii=False)


def translate_command(args: argparse.Namespace) -> None:
    from transduce.translate import Translator

    translator = Translator.load(args.model, args.checkpoint, device=args.device)
    inputs = _read_input(args.input)
    results = translator.decode(inputs, _decode_options(args))
    if args.format == "jsonl":
        text = "".join(_jsonl(src, hyps) + "\n" for src, hyps in zip(inputs, results, strict=True))
    else:
        text = "".join(hyps[0].text + "\n" for hyps in results)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)


def evaluate_command(args: argparse.Namespace) -> None:
    from transduce.translate import Translator, evaluate

    translator = Translator.load(args.model, args.checkpoint, device=args.device)
    sources, references = read_lines(args.src), read_lines(args.ref)
    scores = evaluate(translator, sources, references, _decode_options(args))
    print(json.dumps(scores, ensure_ascii=False))


def _add_decode_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (greedy unless --beam > 1 or --sample)")
    g.add_argument("--beam", type=int, default=1, help="beam size")
    g.add_argument("--nbest", type=int, default=1, help="hypotheses (or samples) per input")
    g.add_argument("--length-penalty", type=float, default=0.0, metavar="ALPHA",
                   help="GNMT length penalty alpha for beam search")  # fmt: skip
    g.add_argument("--normalize", action="store_true", help="rank beams by log-prob per token")
    g.add_argument("--no-repeat-ngram", type=int, default=0, metavar="N")
    g.add_argument("--sample", action="store_true", help="sample instead of searching")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None, help="sampling seed (reproducible)")
    g.add_argument("--max-len", type=int, default=None, help="absolute output length limit")
    g.add_argument("--max-len-ratio", type=float, default=None,
                   help="limit = ceil(ratio * source length) + 5")  # fmt: skip
    g.add_argument("--batch-size", type=int, default=None)


def plot_command(args: argparse.Namespace) -> None:
    from transduce import plots

    if args.what == "curves":
        out = plots.plot_learning_curves(Path(args.model) / "metrics.jsonl", args.output)
    else:
        from transduce.translate import Translator

        if not args.text:
            raise ConfigError("plot attention: give --text 'a sentence'")
        result = Translator.load(args.model).translate_full([args.text])[0]
        if result.attention is None:
            raise ConfigError(f"{args.model}: this model has no attention to draw")
        out = plots.plot_attention(
            result.attention, result.src_tokens, result.out_tokens, args.output,
            title=f"{args.text} → {result.text}",
        )  # fmt: skip
    print(out)


def average_command(args: argparse.Namespace) -> None:
    from transduce.checkpoint import write_average

    print(write_average(args.model, args.last))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transduce", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train and test on the built-in date task")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--n-train", type=int, default=30000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=demo_command)

    p = sub.add_parser("train", help="train a model from a YAML config")
    p.add_argument("config", nargs="?", help="YAML config (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=0.001")  # fmt: skip
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=train_command)

    for name, func, helptext in (
        ("translate", translate_command, "translate lines (stdin -> stdout)"),
        ("evaluate", evaluate_command, "BLEU, chrF, exact match against references"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--model", required=True, help="run directory")
        p.add_argument("--device", default="cpu")
        p.add_argument("--checkpoint", choices=["best", "last", "averaged"], default="best")
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
        _add_decode_flags(p)
        if name == "translate":
            p.add_argument("--input", help="input file (default stdin)")
            p.add_argument("--output", help="output file (default stdout)")
            p.add_argument("--format", choices=["text", "jsonl"], default="text",
                           help="jsonl: n-best hypotheses with scores and attention")  # fmt: skip
        else:
            p.set_defaults(format="text")
            p.add_argument("--src", required=True, help="source lines")
            p.add_argument("--ref", required=True, help="reference lines")
        p.set_defaults(func=func)

    p = sub.add_parser("average", help="average the last N kept checkpoints of a run")
    p.add_argument("--model", required=True, help="run directory (train.keep_checkpoints > 0)")
    p.add_argument("--last", type=int, default=5)
    p.set_defaults(func=average_command)

    p = sub.add_parser("plot", help="attention heatmap or learning curves as PNG")
    p.add_argument("what", choices=["attention", "curves"])
    p.add_argument("--model", required=True, help="run directory")
    p.add_argument("--text", help="sentence to translate and draw (attention)")
    p.add_argument("--output", required=True, help="PNG file to write")
    p.set_defaults(func=plot_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.quiet else "%(message)s",
    )
    try:
        args.func(args)
    except (ConfigError, DataError, FileNotFoundError, FileExistsError, ValueError) as err:
        if os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"transduce {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
