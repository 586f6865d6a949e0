"""``python -m transduce.runtime translate --model DIR``: stdin -> stdout without torch.

The same line guarantees as ``transduce translate``: one output line per input line, in
order, an empty line for an empty one; bad input or a damaged export gives one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from transduce.data.corpus import DataError, read_lines


def add_decode_flags(p: argparse.ArgumentParser) -> None:
    """The decoding flags of ``transduce translate`` (a test keeps the two lists equal)."""
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
    g.add_argument(
        "--max-input-len",
        type=int,
        default=None,
        metavar="TOKENS",
        help="source tokens per line (default: the export's, 1024)",
    )
    g.add_argument(
        "--on-long-input",
        choices=["truncate", "skip", "error"],
        default=None,
        help="what to do with a longer line (default truncate, with a warning)",
    )


def options_from(args: argparse.Namespace, cls):
    """``cls`` (a DecodeOptions) from the flags of :func:`add_decode_flags`."""
    return cls(
        beam=args.beam, nbest=args.nbest, alpha=args.length_penalty, normalize=args.normalize,
        no_repeat_ngram=args.no_repeat_ngram, sample=args.sample, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, max_len=args.max_len,
        max_len_ratio=args.max_len_ratio, batch_size=args.batch_size,
        attention=getattr(args, "format", "text") == "jsonl",
        max_input_len=args.max_input_len, on_long_input=args.on_long_input,
    )  # fmt: skip


def jsonl(source: str, hyps) -> str:
    """One input's n-best list as a JSON line (the layout of ``transduce translate``)."""
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


def load(model_dir: str, threads: int = 0):
    """The runtime translator for an exported directory (engine from its manifest)."""
    from transduce.runtime.model import read_manifest

    if read_manifest(model_dir)["engine"] == "ct2":
        from transduce.runtime.ct2 import CT2Translator

        return CT2Translator.load(model_dir, threads)
    from transduce.runtime.translate import Translator

    return Translator.load(model_dir, threads)


def translate(args: argparse.Namespace) -> None:
    """Translate the input lines, writing each batch's lines as they come (in order)."""
    from transduce.runtime.translate import DecodeOptions

    translator = load(args.model, args.threads)
    inputs = read_lines("-" if args.input is None else args.input)
    try:
        out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    except OSError as err:
        raise DataError(args.output, None, f"cannot write: {err.strerror or err}") from None
    done = 0
    try:
        for results in translator.iter_decode(inputs, options_from(args, DecodeOptions)):
            part = inputs[done : done + len(results)]
            if args.format == "jsonl":
                pairs = zip(part, results, strict=True)
                out.write("".join(jsonl(s, h) + "\n" for s, h in pairs))
            else:
                out.write("".join(hyps[0].text + "\n" for hyps in results))
            out.flush()
            done += len(results)
    finally:
        if out is not sys.stdout:
            out.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m transduce.runtime",
        description="PyTorch-free inference on an exported model",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("translate", help="translate lines (stdin -> stdout)")
    p.add_argument("--model", required=True, help="directory written by transduce export")
    p.add_argument("--input", help="input file (default stdin)")
    p.add_argument("--output", help="output file (default stdout)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: default)")
    add_decode_flags(p)
    p.set_defaults(func=translate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (DataError, FileNotFoundError, ValueError) as err:
        if os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce.runtime {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
