"""``python -m transduce.runtime translate|evaluate|forecast --model DIR`` without torch.

The same guarantees as ``transduce translate`` / ``evaluate`` / ``forecast``: one output line
per input line, in order, an empty line for an empty one; bad input or a damaged export
gives one line on stderr and exit code 2. ``transduce`` itself runs the same code on an
exported directory; this entry point only leaves out the commands that need PyTorch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from transduce.atomic import refuse_overwriting_inputs, refuse_writing_into_models
from transduce.commands.options import (
    add_decode_flags,
    add_device_flag,
    flag_name,
    int_at_least,
    options_from_args,
)
from transduce.config import ConfigError
from transduce.errors import DataError, missing_extra
from transduce.inference.textio import add_stream_flags
from transduce.signals import Terminated, terminating


def _translator(args: argparse.Namespace):
    from transduce.loading import load

    options = options_from_args(args)  # bad flags fail before the model loads
    names = ("input", "src", "ref", "prefix_file", "constraints_file")
    sides = [getattr(args, name, None) for name in names]  # an output never replaces them
    refuse_overwriting_inputs(args.output, sides)
    refuse_writing_into_models(args.output, [args.model])  # nor writes into the export
    translator = load(args.model, device=args.device, threads=args.threads)
    translator.check(options, flag_name)
    return translator, options


def translate(args: argparse.Namespace) -> None:
    """Translate the input lines, writing each batch's lines as they come (in order)."""
    from transduce.inference.textio import stream_translate

    translator, options = _translator(args)
    stream_translate(translator, args, options)


def evaluate(args: argparse.Namespace) -> None:
    """Scores against references, one JSON line (as ``transduce evaluate``)."""
    from transduce.evaluation import evaluate_files

    translator, options = _translator(args)
    scores = evaluate_files(translator, args.src, args.ref, options, args.output, args.ref_lang)
    print(json.dumps(scores, ensure_ascii=False))


def forecast(args: argparse.Namespace) -> None:
    """An exported forecasting run's forecasts (as ``transduce forecast``)."""
    from transduce.forecasting.command import forecast_command

    forecast_command(args)


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="directory written by transduce export")
    p.add_argument(
        "--threads",
        type=int_at_least(0, 1024),
        default=0,
        help="onnxruntime / CTranslate2 threads (0: their default)",
    )
    add_device_flag(p)


def build_parser() -> argparse.ArgumentParser:
    from transduce.forecasting.command import add_io_flags

    parser = argparse.ArgumentParser(
        prog="python -m transduce.runtime",
        description="PyTorch-free inference on an exported model",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("translate", help="translate lines (stdin -> stdout)")
    _model_flags(p)
    p.add_argument("--input", help="input file (default stdin)")
    p.add_argument("--output", help="output file (default stdout)")
    p.add_argument("--format", choices=["text", "jsonl"], default="text")
    add_decode_flags(p)
    add_stream_flags(p)
    p.set_defaults(func=translate)
    p = sub.add_parser("evaluate", help="BLEU, chrF, exact match against references")
    _model_flags(p)
    p.add_argument("--src", required=True, help="source lines (plain or .gz)")
    p.add_argument("--ref", required=True, help="reference lines (plain or .gz)")
    p.add_argument("--output", help="also write the hypotheses here, one per line")
    p.add_argument("--ref-lang", help="the references' language for bleu_lc_moses")
    add_decode_flags(p)
    p.set_defaults(func=evaluate)
    p = sub.add_parser("forecast", help="forecast the steps after each series (and score them)")
    _model_flags(p)
    add_io_flags(p)
    p.set_defaults(func=forecast, checkpoint="best", combine="median")
    return parser


def main(argv: list[str] | None = None) -> int:
    with terminating():  # SIGTERM: Terminated, handled as an interrupt (transduce/signals.py)
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except BrokenPipeError:  # stdout's reader left (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
        sys.stderr.flush()  # then no interpreter shutdown: the input's reader thread may
        os._exit(141)  # hold stdin's lock (a fatal error at exit); 141: 128 + SIGPIPE
    except (ConfigError, DataError, FileNotFoundError, ValueError) as err:
        if os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce.runtime {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # a training run given: it decodes on torch
        if (advice := missing_extra(err)) is None or os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce.runtime {args.command}: error: {advice}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        note = f" ({err})" if str(err) else ""  # e.g. how many lines an --output had
        said, code = (
            ("terminated by SIGTERM", 143) if isinstance(err, Terminated) else ("interrupted", 130)
        )
        print(f"transduce.runtime {args.command}: {said}{note}", file=sys.stderr)
        return code
    return 0


if __name__ == "__main__":
    from transduce.inference.textio import exit_process

    exit_process(main())
