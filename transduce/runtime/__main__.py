"""``python -m transduce.runtime translate --model DIR``: stdin -> stdout without torch.

The same line guarantees as ``transduce translate``: one output line per input line, in
order, an empty line for an empty one; bad input or a damaged export gives one line on
stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from transduce.atomic import refuse_overwriting_inputs
from transduce.cli_options import add_decode_flags, flag_name, int_at_least, options_from_args
from transduce.config import ConfigError
from transduce.errors import DataError
from transduce.textio import add_stream_flags


def translate(args: argparse.Namespace) -> None:
    """Translate the input lines, writing each batch's lines as they come (in order)."""
    from transduce.engines import load
    from transduce.textio import stream_translate

    options = options_from_args(args)  # bad flags fail before the model loads
    model = Path(args.model)  # an output never replaces an input or a file of the model
    files = [str(f) for f in model.iterdir() if f.is_file()] if model.is_dir() else []
    sides = [
        args.input,
        getattr(args, "prefix_file", None),
        getattr(args, "constraints_file", None),
    ]
    refuse_overwriting_inputs(args.output, [*sides, *files])
    translator = load(args.model, threads=args.threads)
    translator.check(options, flag_name)
    stream_translate(translator, args, options)


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
    p.add_argument(
        "--threads", type=int_at_least(0, 1024), default=0, help="onnxruntime threads (0: default)"
    )
    add_decode_flags(p)
    add_stream_flags(p)
    p.set_defaults(func=translate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ConfigError, DataError, FileNotFoundError, ValueError) as err:
        if os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce.runtime {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
