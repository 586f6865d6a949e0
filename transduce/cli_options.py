"""Option checks for the command line: argparse types that reject a bad value up front
with the flag's name (``argument --beam: must be an integer >= 1, got 0``), and the checks
that need several flags at once (sampling flags without ``--sample``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from transduce.config import ConfigError

DESCRIPTION = """\
transduce trains sequence-to-sequence models (RNN, attention, transformer) on a CPU or
GPU, and translates, evaluates, plots and forecasts with them.

Start with `transduce demo` (a date task in about a minute), or train a recipe:
  transduce recipes                                   # the shipped configs
  transduce train tatoeba_char_ell --out runs/ell     # a recipe name or a YAML file
  echo "I am hungry." | transduce translate --model runs/ell
`transduce COMMAND --help` describes each command's flags."""


def port_number(text: str) -> int:
    """An argparse ``type``: a TCP port, 0 (a free one) to 65535."""
    value = int_at_least(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type``: a finite number >= 0."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def probability(text: str) -> float:
    """An argparse ``type``: a number in (0, 1] (top-p's nucleus mass)."""
    value = _float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value:g}")
    return value


def round_floats(value, digits: int):
    """``value`` with every float inside (dicts, lists) rounded to ``digits`` decimals."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value


SAMPLING_FLAGS = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}


def check_decode_args(args: argparse.Namespace) -> None:
    """The decoding flags that only make sense together; raises ConfigError naming them."""
    if args.sample:
        if args.beam > 1:
            raise ConfigError(f"--beam {args.beam} and --sample exclude each other")
        if args.no_repeat_ngram:
            raise ConfigError("--no-repeat-ngram applies to beam search, not --sample")
        return
    given = [f"--{k.replace('_', '-')}" for k, d in SAMPLING_FLAGS.items() if getattr(args, k) != d]
    if args.seed is not None:
        given.append("--seed")
    if given:
        raise ConfigError(f"{', '.join(given)} only apply with --sample (add --sample)")
    if args.nbest > args.beam:
        raise ConfigError(
            f"--nbest {args.nbest} needs --beam >= {args.nbest} (or --sample for "
            f"{args.nbest} samples); got --beam {args.beam}"
        )


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """The flags of every command that loads a trained model and decodes with it."""
    p.add_argument("--model", required=True, action="append", metavar="DIR",
                   help="run directory (written by `transduce train`) or exported directory; "
                   "repeat for an ensemble averaging the runs' log-probabilities")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--checkpoint", choices=["best", "last", "averaged"], default="best",
                   help="which weights: best validation (default), last, or averaged")  # fmt: skip
    p.add_argument("--threads", type=int_at_least(0), default=0,
                   help="torch CPU threads (0: torch's default)")  # fmt: skip
    add_decode_flags(p)


def add_decode_flags(p: argparse.ArgumentParser) -> None:
    """The decoding flags of translate, evaluate, score and chat."""
    g = p.add_argument_group("decoding (greedy unless --beam > 1 or --sample)")
    g.add_argument("--beam", type=int_at_least(1), default=1, metavar="K",
                   help="beam size (1: greedy; default 1)")  # fmt: skip
    g.add_argument("--nbest", type=int_at_least(1), default=1, metavar="N",
                   help="hypotheses per input (<= --beam), or samples with --sample")  # fmt: skip
    g.add_argument("--length-penalty", type=non_negative_float, default=0.0, metavar="ALPHA",
                   help="GNMT length penalty alpha for beam search (0: none)")  # fmt: skip
    g.add_argument("--normalize", action="store_true", help="rank beams by log-prob per token")
    g.add_argument("--no-repeat-ngram", type=int_at_least(0), default=0, metavar="N",
                   help="beam search never repeats an n-gram of this size (0: off)")  # fmt: skip
    g.add_argument("--sample", action="store_true", help="sample instead of searching")
    g.add_argument("--temperature", type=positive_float, default=1.0, metavar="T",
                   help="with --sample: divide logits by T (default 1)")  # fmt: skip
    g.add_argument("--top-k", type=int_at_least(0), default=0, metavar="K",
                   help="with --sample: keep the K likeliest tokens (0: all)")  # fmt: skip
    g.add_argument(
        "--top-p",
        type=probability,
        default=1.0,
        metavar="P",
        help="with --sample: nucleus of probability mass P in (0, 1] (default 1)",
    )
    g.add_argument("--seed", type=int, default=None,
                   help="with --sample: random seed (reproducible samples)")  # fmt: skip
    g.add_argument(
        "--max-len",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="absolute output length limit (default: the run's decode.max_len)",
    )
    g.add_argument("--max-len-ratio", type=positive_float, default=None, metavar="R",
                   help="limit = ceil(R * source length) + 5")  # fmt: skip
    g.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=None,
        metavar="N",
        help="sentences decoded together (default: the run's decode.batch_size)",
    )
    g.add_argument(
        "--max-input-len",
        type=int_at_least(1),
        default=None,
        metavar="TOKENS",
        help="source tokens per line (default: the run's decode.max_input_len, 1024)",
    )
    g.add_argument(
        "--on-long-input",
        choices=["truncate", "skip", "error"],
        default=None,
        help="what to do with a longer line (default truncate, with a warning)",
    )
