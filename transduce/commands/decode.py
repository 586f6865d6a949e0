"""The decoding commands: ``transduce translate`` (a streaming filter, or a file), ``evaluate``
(BLEU, chrF, exact match against references) and ``score-pairs`` (the log-probability of
given targets); each parses its flags and calls the library."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging

from transduce.atomic import refuse_overwriting_inputs, refuse_writing_into_models
from transduce.commands import options as opt
from transduce.data.corpus import read_lines
from transduce.errors import DataError
from transduce.export.command import add_engine_flag
from transduce.inference.textio import add_stream_flags

log = logging.getLogger("transduce")


def _read_input(path: str | None) -> list[str]:
    """--input, or stdin under the same rules (strict UTF-8, errors name the line)."""
    return read_lines("-" if path is None else path)


def decode_options(args: argparse.Namespace):
    from transduce.commands.options import options_from_args

    return options_from_args(args)


def translate_command(args: argparse.Namespace) -> None:
    from transduce.export.command import load_translator
    from transduce.inference.textio import stream_translate

    options = decode_options(args)  # bad flags fail before the model loads
    refuse_overwriting_inputs(args.output, [args.input, args.prefix_file, args.constraints_file])
    refuse_writing_into_models(args.output, _models(args))
    translator = load_translator(args)
    with _naming_input(args.input):
        stream_translate(translator, args, options)


def score_pairs_command(args: argparse.Namespace) -> None:
    from transduce.export.command import load_translator
    from transduce.inference.scoring import read_pairs, write_scores

    options = decode_options(args)
    refuse_overwriting_inputs(args.output, [args.src, args.tgt])
    refuse_writing_into_models(args.output, _models(args))
    sources, targets = read_pairs(args.src, args.tgt)
    translator = load_translator(args)
    write_scores(translator.score(sources, targets, options), args.output)


def _models(args: argparse.Namespace) -> list[str]:
    """The --model folders an output may not write into (their checkpoints, config,
    vocabularies, weights: :func:`~transduce.atomic.refuse_writing_into_models`), nor
    replace the data files of (:func:`~transduce.config.run_data_files`)."""
    from transduce.config import run_data_files

    models = getattr(args, "model", None) or []
    models = models if isinstance(models, list) else [models]
    refuse_overwriting_inputs(args.output, [p for m in models for p in run_data_files(m)])
    return models


@contextlib.contextmanager
def _naming_input(path: str | None):
    """Errors about an input line name the input file (the decoder knows only lines)."""
    try:
        yield
    except DataError as err:
        if err.path != "<input>":
            raise
        raise DataError(path or "<stdin>", err.line, err.problem) from None


def evaluate_command(args: argparse.Namespace) -> None:
    from transduce.evaluation import evaluate, moses_language
    from transduce.export.command import load_translator

    options = decode_options(args)
    refuse_overwriting_inputs(args.output, [args.src, args.ref])
    refuse_writing_into_models(args.output, _models(args))
    translator = load_translator(args)
    sources, references = read_lines(args.src), read_lines(args.ref)
    lang, how = moses_language(args.ref, args.ref_lang)
    log.info("bleu_lc_moses: Moses tokenizer for %r, from %s (--ref-lang sets it)", lang, how)
    with _naming_input(args.src):
        scores = evaluate(translator, sources, references, options, args.output, lang)
    scores["bleu_lc_moses_lang"] = f"{lang} (from {how})"
    print(json.dumps(scores, ensure_ascii=False))


def add_parser(sub) -> None:
    for name, func, helptext in (
        ("translate", translate_command, "translate lines (stdin -> stdout)"),
        ("evaluate", evaluate_command, "BLEU, chrF, exact match against references"),
    ):
        p = sub.add_parser(name, help=helptext)
        opt.add_model_flags(p)
        add_engine_flag(p)
        if name == "translate":
            p.add_argument("--input", help="input file, one sentence a line (default stdin)")
            p.add_argument("--output", help="output file (default stdout)")
            p.add_argument(
                "--format",
                choices=["text", "jsonl"],
                default="text",
                help="jsonl: n-best hypotheses with scores and attention",
            )
            add_stream_flags(p)
        else:
            p.set_defaults(format="text")
            p.add_argument("--src", required=True, help="source lines (plain or .gz)")
            p.add_argument("--ref", required=True, help="reference lines (plain or .gz)")
            p.add_argument("--output", help="also write the hypotheses here, one per line")
            p.add_argument(
                "--ref-lang",
                type=_language_code,
                help="the references' language for the Moses "
                "tokenizer of bleu_lc_moses (default: from --ref's name, e.g. "
                "test.de.gz -> de; else en)",
            )
        p.set_defaults(func=func)

    p = sub.add_parser("score-pairs", help="log-probability of given targets (teacher forced)")
    opt.add_model_flags(p)
    add_engine_flag(p)
    p.add_argument("--src", help="source lines (with --tgt; default: SOURCE<TAB>TARGET on stdin)")
    p.add_argument("--tgt", help="target lines, line-aligned with --src")
    p.add_argument("--output", help="JSON lines, one per pair (default stdout)")
    p.set_defaults(func=score_pairs_command, format="text")


def _language_code(text: str) -> str:
    """``--ref-lang``: a language code (``de``, ``pt-BR``, ``zh_Hant``), not a path."""
    import re

    if not re.fullmatch(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,2}", text):
        shown = text[:40].encode("ascii", "backslashreplace").decode()
        raise argparse.ArgumentTypeError(f"{shown!r} is not a language code (e.g. de, pt-BR)")
    return text
