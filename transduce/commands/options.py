"""Option checks for the command line: argparse types that reject a bad value up front
with the flag's name (``argument --beam: must be an integer >= 1, got 0``), and the checks
that need several flags at once (sampling flags without ``--sample``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import Field
from typing import Any

from transduce.config import ConfigError
from transduce.errors import OptionError
from transduce.inference.decoding import DecodeOptions, check_rules, in_bounds, option_fields

DESCRIPTION = """\
transduce trains sequence-to-sequence models (RNN, attention, transformer) on a CPU or
GPU, and translates, evaluates, plots and forecasts with them.

Start with `transduce demo` (a date task in about a minute), or train a recipe:
  transduce recipes                                   # the shipped configs
  transduce train tatoeba_char_ell --out runs/ell     # a recipe name or a YAML file
  echo "I am hungry." | transduce translate --model runs/ell
`transduce COMMAND --help` describes each command's flags."""


INT_MAX = 2**31 - 1  # a count above this overflows torch's and onnxruntime's integers
MAX_THREADS = 1024  # torch would start that many threads at the first parallel op


def int_at_least(low: int, high: int = INT_MAX) -> Callable[[str], int]:
    """An argparse ``type``: an integer ``>= low`` and ``<= high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        if value > high:
            raise argparse.ArgumentTypeError(
                f"must be an integer <= {high:,}, got {str(value)[:30]}"
            )
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


def device_name(text: str) -> str:
    """An argparse ``type``: a device (cpu, cuda, cuda:N, auto or mps), checked before
    torch loads (:func:`transduce.device.device_problem`)."""
    from transduce.device import device_problem

    if (problem := device_problem(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_device_flag(p: argparse.ArgumentParser) -> None:
    """``--device`` of every command that runs a model: torch for a training run,
    onnxruntime's CUDA provider or CTranslate2's GPU for an export."""
    p.add_argument(
        "--device",
        type=device_name,
        default="cpu",
        help="cpu, cuda, cuda:N or auto (default cpu); exports: cpu, cuda[:N] or auto",
    )


def configure_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Progress of ``transduce`` at INFO on stderr (WARNING with ``quiet``); every other
    library's loggers at WARNING unless ``verbose`` (torch.onnx's exporter alone logs some
    370 INFO lines per export)."""
    fmt = "%(levelname)s %(name)s: %(message)s" if quiet else "%(message)s"
    logging.basicConfig(format=fmt)
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("transduce").setLevel(logging.WARNING if quiet else logging.INFO)


def round_floats(value, digits: int):
    """``value`` with every float inside (dicts, lists) rounded to ``digits`` decimals."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(v, digits) for v in value]
    return value


def flag_of(f: Field) -> str | None:
    """The command-line flag of a :class:`~transduce.inference.decoding.DecodeOptions` field."""
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def flag_name(name: str) -> str:
    """The command-line spelling of the DecodeOptions field ``name`` (``alpha`` ->
    ``--length-penalty``; the field's name where it has no flag)."""
    return next((flag_of(f) or f.name for f in option_fields() if f.name == name), name)


def bounded(f: Field) -> Callable[[str], Any]:
    """An argparse ``type`` for a numeric option: its type and the bounds its metadata
    declares, refused with the flag's name (``argument --beam: must be ... >= 1, got 0``)."""
    meta = f.metadata
    if str(f.type).startswith("int"):  # the HTTP bounds where the CLI has none (--seed)
        low = meta.get("ge", meta.get("http_ge", -(2**63)))
        return int_at_least(low, meta.get("le", meta.get("http_lt", INT_MAX + 1) - 1))

    def parse(text: str) -> float:
        value = _float(text)
        if not in_bounds(value, meta):
            bound, edge = (meta["gt"], "(") if "gt" in meta else (meta["ge"], "[")
            low = f"> {bound:g}" if edge == "(" else f">= {bound:g}"
            span = f"in {edge}{bound:g}, {meta['le']:g}]" if "le" in meta else low
            raise argparse.ArgumentTypeError(f"must be {span}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


def check_decode_args(args: argparse.Namespace) -> DecodeOptions:
    """The options the decoding flags give, checked together (:func:`check_rules`) before
    any model loads; a bad combination is a ConfigError naming its flags."""
    values = {f.name: getattr(args, f.name) for f in option_fields() if flag_of(f)}
    values["attention"] = getattr(args, "format", "text") == "jsonl"
    full = {f.name: values.get(f.name, f.default) for f in option_fields()}
    try:
        check_rules(full, flag_name, lambda n: f"{flag_name(n)} {full[n]}")
    except OptionError as err:
        raise ConfigError(err.message) from None
    return DecodeOptions(**values)


options_from_args = check_decode_args  # DecodeOptions from the flags of add_decode_flags


def add_model_flags(p: argparse.ArgumentParser, exports: bool = True) -> None:
    """The flags of every command that loads a trained model and decodes with it
    (``exports``: it also takes an exported directory)."""
    p.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="DIR",
        help="run directory (written by `transduce train`)"
        + (" or exported directory" if exports else "")
        + "; repeat for an ensemble averaging the runs' log-probabilities",
    )
    add_device_flag(p)
    p.add_argument(
        "--checkpoint",
        choices=["best", "last", "averaged"],
        default="best",
        help="which weights: best validation (default), last, or averaged",
    )
    p.add_argument(
        "--threads",
        type=int_at_least(0, MAX_THREADS),
        default=0,
        help="torch CPU threads (0: torch's default)",
    )
    add_decode_flags(p)


def add_decode_flags(p: argparse.ArgumentParser) -> None:
    """The decoding flags of translate, evaluate, score and chat: one per field of
    :class:`~transduce.inference.decoding.DecodeOptions` that has a flag, generated from it."""
    g = p.add_argument_group("decoding (greedy unless --beam > 1 or --sample)")
    for f in option_fields():
        flag = flag_of(f)
        if flag is None:
            continue
        if f.type in ("bool", bool):
            g.add_argument(flag, dest=f.name, action="store_true", help=f.metadata["help"])
        elif "choices" in f.metadata:
            g.add_argument(
                flag,
                dest=f.name,
                choices=f.metadata["choices"],
                default=f.default,
                help=f.metadata["help"],
            )
        else:
            g.add_argument(
                flag,
                dest=f.name,
                type=bounded(f),
                default=f.default,
                metavar=f.metadata.get("metavar"),
                help=f.metadata["help"],
            )
