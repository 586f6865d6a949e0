"""Command line: parse, call one public function, print. ``transduce --help`` lists commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from transduce import data_command
from transduce.config import ConfigError
from transduce.data.corpus import DataError, read_lines
from transduce.export.command import add_engine_flag
from transduce.export.command import add_parser as add_export_parser
from transduce.serve import command as serve_command

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
    if result.interrupted:
        _print_resume_command(args, result)
        sys.exit(128 + result.interrupted)


def _print_resume_command(args: argparse.Namespace, result) -> None:
    """The command that continues an interrupted run (rank 0's line under torchrun)."""
    if os.environ.get("RANK", "0") != "0":
        return
    world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    prog = f"torchrun --nproc_per_node {world} -m transduce" if world > 1 else "transduce"
    again = "".join(" " + shlex.quote(f"--set={item}") for item in args.set)
    out = shlex.quote(str(result.run_dir))
    print(f"transduce train: interrupted at step {result.steps}; checkpoint written; resume "
          f"with: {prog} train --resume --out {out}{again}", file=sys.stderr)  # fmt: skip


def _read_input(path: str | None) -> list[str]:
    """--input, or stdin under the same rules (strict UTF-8, errors name the line)."""
    return read_lines("-" if path is None else path)


def _decode_options(args: argparse.Namespace):
    from transduce.translate import DecodeOptions

    return DecodeOptions(
        beam=args.beam, nbest=args.nbest, alpha=args.length_penalty, normalize=args.normalize,
        no_repeat_ngram=args.no_repeat_ngram, sample=args.sample, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed, max_len=args.max_len,
        max_len_ratio=args.max_len_ratio, batch_size=args.batch_size,
        attention=args.format == "jsonl", max_input_len=args.max_input_len,
        on_long_input=args.on_long_input,
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
    from transduce.export.command import load_translator

    translator = load_translator(args)
    inputs = _read_input(args.input)
    out = _open_output(args.output)
    done = 0  # output streams batch by batch, in input order
    try:
        for results in translator.iter_decode(inputs, _decode_options(args)):
            part = inputs[done : done + len(results)]
            if args.format == "jsonl":
                pairs = zip(part, results, strict=True)
                text = "".join(_jsonl(src, hyps) + "\n" for src, hyps in pairs)
            else:
                text = "".join(hyps[0].text + "\n" for hyps in results)
            out.write(text)
            out.flush()
            done += len(results)
    finally:
        if out is not sys.stdout:
            out.close()


def _open_output(path: str | None):
    """stdout, or ``path`` opened for writing through whatever it is (a symlink, a FIFO,
    /proc/self/fd/1): nothing is replaced, and a new file gets the user's umask."""
    if not path:
        return sys.stdout
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as err:
        raise DataError(path, None, f"cannot write: {err.strerror or err}") from None


def evaluate_command(args: argparse.Namespace) -> None:
    from transduce.export.command import load_translator
    from transduce.translate import evaluate

    translator = load_translator(args)
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
    g.add_argument(
        "--max-input-len",
        type=int,
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


def plot_command(args: argparse.Namespace) -> None:
    from transduce import plots

    if args.what == "forecast":
        return plot_forecast_command(args)
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


def generate_command(args: argparse.Namespace) -> None:
    from transduce.data.derived import GENERATORS

    print(json.dumps({"out": args.out, **GENERATORS[args.task](args.out)}))


def score_command(args: argparse.Namespace) -> None:
    from transduce.applications import score_file
    from transduce.translate import Translator

    translator = Translator.load(args.model, args.checkpoint, device=args.device)
    print(json.dumps(score_file(translator, args.data, args.metric, _decode_options(args))))


def chat_command(args: argparse.Namespace) -> None:
    from transduce.applications import chat, stdin_lines
    from transduce.translate import Translator

    translator = Translator.load(args.model, args.checkpoint, device=args.device)
    prompt = None
    if sys.stdin.isatty():
        print("type a line; /quit or Ctrl-D ends", file=sys.stderr)
        prompt = lambda: print("> ", end="", file=sys.stderr, flush=True)  # noqa: E731
    chat(translator, stdin_lines(), sys.stdout, _decode_options(args), prompt)


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    """The flags of every command that loads a trained model and decodes with it."""
    p.add_argument("--model", required=True, help="run directory")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", choices=["best", "last", "averaged"], default="best")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    _add_decode_flags(p)


def _add_application_commands(sub) -> None:
    """``generate``, ``score`` and ``chat``: the QA, dialogue and summarisation recipes."""
    p = sub.add_parser("generate", help="write a derived task's data (qa, headlines)")
    p.add_argument("task", choices=["qa", "headlines"])
    p.add_argument("--out", required=True, help="folder for train/valid/test files")
    p.set_defaults(func=generate_command)
    for name, func, helptext in (
        ("score", score_command, "QA exact match/F1, ROUGE or BLEU on a held-out file"),
        ("chat", chat_command, "answer lines from stdin until EOF or /quit"),
    ):
        p = sub.add_parser(name, help=helptext)
        _add_model_flags(p)
        p.set_defaults(func=func, format="text")
        if name == "score":
            where = p.add_mutually_exclusive_group(required=True)
            where.add_argument("--data", help="file in the run's data format")
            where.add_argument(
                "--valid", action="store_true", help="the run's validation split (from its config)"
            )
            p.add_argument("--metric", choices=["squad", "rouge", "bleu"], required=True)


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
        _add_model_flags(p)
        add_engine_flag(p)
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
    p.add_argument("what", choices=["attention", "curves", "forecast"])
    p.add_argument("--model", required=True, help="run directory")
    p.add_argument("--text", help="sentence to translate and draw (attention)")
    p.add_argument("--output", required=True, help="PNG file to write")
    _add_forecast_plot_flags(p)
    p.set_defaults(func=plot_command)
    _add_application_commands(sub)
    _add_forecast_parser(sub)
    data_command.add_parser(sub)
    serve_command.add_parser(sub)
    add_export_parser(sub)
    return parser


# ---------------------------------------------------------------------- forecasting


def _forecast_run(args: argparse.Namespace):
    from transduce.data.series import read_series, require_positive
    from transduce.forecasting.pipeline import Forecaster

    if not args.input:
        raise ConfigError(f"{args.command}: give --input SERIES_FILE")
    forecaster = Forecaster.load(args.model, args.checkpoint, device=args.device)
    series = read_series(args.input, args.format, args.on_bad_line)
    require_positive(series, forecaster.cfg.series.scaling)
    actuals = read_series(args.actuals, args.format) if args.actuals else None
    return forecaster, series, forecaster.forecast(series.values), actuals


def forecast_command(args: argparse.Namespace) -> None:
    from transduce.forecasting.pipeline import evaluate_forecasts, write_forecasts

    forecaster, series, forecasts, actuals = _forecast_run(args)
    write_forecasts(args.output, series.ids, forecasts)
    result = {"series": len(series), "horizon": forecasts.shape[1], "output": args.output}
    if actuals is not None:
        result.update(evaluate_forecasts(series, actuals, forecasts, forecaster.spec.period))
    print(json.dumps(result))


def plot_forecast_command(args: argparse.Namespace) -> None:
    from transduce.plots import plot_forecast

    _, series, forecasts, actuals = _forecast_run(args)
    wanted = args.series.split(",") if args.series else series.ids[:3]
    missing = [name for name in wanted if name not in series.ids]
    if missing:
        raise ConfigError(f"plot forecast: no series {missing[:5]} in {args.input}")
    rows = [series.ids.index(name) for name in wanted]
    out = plot_forecast(
        wanted, [series.values[i] for i in rows], [forecasts[i] for i in rows], args.output,
        actuals=None if actuals is None else [actuals.values[i] for i in rows],
    )  # fmt: skip
    print(out)


def _add_forecast_plot_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("forecast plots")
    g.add_argument("--input", help="series file (M4 wide CSV or id,timestamp,value)")
    g.add_argument("--actuals", help="the values that followed (same layout), drawn dashed")
    g.add_argument("--series", help="comma-separated series ids (default: the first three)")
    g.add_argument("--format", choices=["auto", "m4", "long"], default="auto")
    g.add_argument("--on-bad-line", choices=["error", "skip"], default="error")
    p.set_defaults(checkpoint="best", device="cpu")


def _add_forecast_parser(sub) -> None:
    p = sub.add_parser("forecast", help="forecast the steps after each series (and score them)")
    p.add_argument("--model", required=True, help="run directory of a forecasting run")
    p.add_argument("--input", required=True, help="series file (M4 wide CSV or id,timestamp,value)")
    p.add_argument("--output", required=True, help="CSV to write: id,F1..FH")
    p.add_argument("--actuals", help="the values that followed: print sMAPE/MASE/OWA too")
    p.add_argument("--format", choices=["auto", "m4", "long"], default="auto")
    p.add_argument("--on-bad-line", choices=["error", "skip"], default="error")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.set_defaults(func=forecast_command)


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
