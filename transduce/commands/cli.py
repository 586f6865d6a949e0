"""Command line: parse, call one public function, print. ``transduce --help`` lists commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from pathlib import Path

from transduce.commands import data as data_command
from transduce.commands import decode as decode_commands
from transduce.commands import options as opt
from transduce.commands.errorlines import environment_problem, said
from transduce.config import ConfigError
from transduce.data import prepare_command
from transduce.errors import DataError
from transduce.export.command import add_parser as add_export_parser
from transduce.forecasting import command as forecast_command
from transduce.serve import command as serve_command
from transduce.signals import Terminated, terminating

log = logging.getLogger("transduce")


def demo_command(args: argparse.Namespace) -> None:
    from transduce.commands.demo import run_demo

    run_demo(args.out, n_train=args.n_train, seed=args.seed)


def train_command(args: argparse.Namespace) -> None:
    from transduce.atomic import refuse_overwriting_inputs
    from transduce.commands.recipes import recipe_path
    from transduce.config import load_config
    from transduce.tasks.train import train

    overrides = list(args.set)
    if args.threads is not None:
        overrides.append(f"train.threads={args.threads}")
    if args.device is not None:
        overrides.append(f"train.device={args.device}")
    if args.resume:
        # CONFIG too: used only where DIR holds no run yet (a requeued job killed early)
        cfg = load_config(recipe_path(args.config), overrides) if args.config else None
        result = train(cfg, out=args.out, resume=True, overrides=overrides)
    else:
        if args.config is None:
            raise ConfigError("train: give a CONFIG file or recipe name (or --resume --out DIR)")
        cfg = load_config(recipe_path(args.config), overrides)
        out = args.out or str(Path("runs") / Path(args.config).stem)
        # the run writes its resolved config.yaml: never over the CONFIG it was given
        refuse_overwriting_inputs(Path(out) / "config.yaml", [recipe_path(args.config)])
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
    print(
        f"transduce train: interrupted at step {result.steps}; checkpoint written; resume "
        f"with: {prog} train --resume --out {out}{again}",
        file=sys.stderr,
    )


def plot_command(args: argparse.Namespace) -> None:
    from transduce.atomic import refuse_writing_into_models
    from transduce.commands import plots

    refuse_writing_into_models(args.output, [args.model])  # RUN/curves.png may be new
    if args.what == "forecast":
        return forecast_command.plot_forecast_command(args)
    if args.what == "curves":
        out = plots.plot_learning_curves(Path(args.model) / "metrics.jsonl", args.output)
    else:
        from transduce.inference.translate import Translator

        if not args.text:
            raise ConfigError("plot attention: give --text 'a sentence'")
        result = Translator.load(args.model).translate_full([args.text])[0]
        if result.attention is None:
            raise ConfigError(f"{args.model}: this model has no attention to draw")
        out = plots.plot_attention(
            result.attention,
            result.src_tokens,
            result.out_tokens,
            args.output,
            title=f"{args.text} → {result.text}",
        )
    print(out)


def average_command(args: argparse.Namespace) -> None:
    from transduce.engine.averaging import step_checkpoints, write_average

    steps = [int(p.stem.removeprefix("step_")) for p in step_checkpoints(args.model)[-args.last :]]
    out = write_average(args.model, args.last)
    short = f" (--last {args.last}, but only {len(steps)} kept)" if len(steps) < args.last else ""
    steps_text = ", ".join(map(str, steps))
    print(f"averaged {len(steps)} checkpoints{short}: steps {steps_text}", file=sys.stderr)
    print(out)  # stdout: only the path, for scripts


def generate_command(args: argparse.Namespace) -> None:
    from transduce.data.derived import GENERATORS

    print(json.dumps({"out": args.out, **GENERATORS[args.task](args.out)}))


def score_command(args: argparse.Namespace) -> None:
    from transduce.commands.applications import score_file
    from transduce.export.command import load_translator

    options = decode_commands.decode_options(args)
    translator = load_translator(args)
    print(json.dumps(score_file(translator, args.data, args.metric, options)))


def chat_command(args: argparse.Namespace) -> None:
    from transduce.commands.applications import chat, stdin_lines
    from transduce.export.command import load_translator

    options = decode_commands.decode_options(args)
    if options.nbest > 1:  # it printed the best one only
        raise ConfigError("chat answers each line with one reply: --nbest is for translate")
    translator = load_translator(args)
    prompt = None
    if sys.stdin.isatty():
        print("type a line; /quit or Ctrl-D ends", file=sys.stderr)
        prompt = lambda: print("> ", end="", file=sys.stderr, flush=True)  # noqa: E731
    chat(translator, stdin_lines(), sys.stdout, options, prompt)


def _runs_only(func):
    """``func`` for commands that decode training runs only (score, chat): an exported
    model is one line saying so (their default --engine torch named a flag they lack)."""

    def checked(args: argparse.Namespace) -> None:
        for model in args.model:
            if os.path.isfile(os.path.join(model, "manifest.json")):
                raise ConfigError(
                    f"{model}: an exported model; `transduce {args.command}` decodes "
                    "training runs (translate, evaluate and serve take exports)"
                )
        func(args)

    return checked


def _add_application_commands(sub) -> None:
    """``generate``, ``score`` and ``chat``: the QA, dialogue and summarisation recipes."""
    p = sub.add_parser("generate", help="write a derived task's data (qa, headlines)")
    p.add_argument("task", choices=["qa", "headlines"], help="which derived data set")
    p.add_argument("--out", required=True, help="folder for train/valid/test files")
    p.set_defaults(func=generate_command)
    for name, func, helptext in (
        ("score", score_command, "QA exact match/F1, ROUGE or BLEU on a held-out file"),
        ("chat", chat_command, "answer lines from stdin until EOF or /quit"),
    ):
        p = sub.add_parser(name, help=helptext)
        opt.add_model_flags(p, exports=False)
        p.set_defaults(func=_runs_only(func), format="text", engine="torch")
        if name == "score":
            where = p.add_mutually_exclusive_group(required=True)
            where.add_argument("--data", help="file in the run's data format")
            where.add_argument(
                "--valid", action="store_true", help="the run's validation split (from its config)"
            )
            p.add_argument(
                "--metric",
                choices=["squad", "rouge", "bleu"],
                required=True,
                help="squad: exact match + F1; rouge: ROUGE-1/2/L; bleu: sacreBLEU",
            )


def build_parser() -> argparse.ArgumentParser:
    from transduce import __version__
    from transduce.commands import recipes

    parser = argparse.ArgumentParser(
        prog="transduce", description=opt.DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"transduce {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="other libraries' logs too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_training_commands(sub)
    recipes.add_parser(sub)
    decode_commands.add_parser(sub)
    _add_run_tools(sub)
    _add_application_commands(sub)
    forecast_command.add_parser(sub)
    data_command.add_parser(sub)
    prepare_command.add_parser(sub)
    serve_command.add_parser(sub)
    add_export_parser(sub)
    return parser


def _add_training_commands(sub) -> None:
    p = sub.add_parser("demo", help="train and test on the built-in date task")
    p.add_argument("--out", default="runs/demo", help="run directory (default runs/demo)")
    p.add_argument(
        "--n-train",
        type=opt.int_at_least(1, 10_000_000),
        default=30000,
        help="training pairs to generate (default 30000)",
    )
    p.add_argument(
        "--seed", type=opt.int_at_least(0, 2**32 - 1), default=0, help="random seed (default 0)"
    )
    p.set_defaults(func=demo_command)

    p = sub.add_parser("train", help="train a model from a YAML config or a recipe name")
    p.add_argument(
        "config",
        nargs="?",
        help="YAML config file, or a recipe name (`transduce recipes` lists them)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=0.001",
    )
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--threads",
        type=opt.int_at_least(0, opt.MAX_THREADS),
        default=None,
        help="torch CPU threads (same as --set train.threads=N; 0: torch's default)",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=None,
        help="where to train (same as --set train.device=...; default: the config's)",
    )
    p.set_defaults(func=train_command)


def _add_run_tools(sub) -> None:
    p = sub.add_parser("average", help="average the last N kept checkpoints of a run")
    p.add_argument("--model", required=True, help="run directory (train.keep_checkpoints > 0)")
    p.add_argument(
        "--last",
        type=opt.int_at_least(1),
        default=5,
        help="how many of the latest kept checkpoints to average (default 5)",
    )
    p.set_defaults(func=average_command)

    p = sub.add_parser("plot", help="attention heatmap or learning curves as PNG")
    p.add_argument(
        "what",
        choices=["attention", "curves", "forecast"],
        help="attention heatmap, learning curves, or forecasts",
    )
    p.add_argument("--model", required=True, help="run directory")
    p.add_argument("--text", help="sentence to translate and draw (attention)")
    p.add_argument("--output", required=True, help="PNG file to write")
    forecast_command.add_plot_flags(p)
    p.set_defaults(func=plot_command)


def _exports_only(args: argparse.Namespace) -> bool:
    """Whether every model the command names is an export (``manifest.json``): then no
    torch is needed, and importing it would cost a second or fail (the runtime install)."""
    given = getattr(args, "model", None)
    given = given if isinstance(given, list) else [given] if given else []
    dirs = [d for m in given for d in (m if Path(m).is_dir() else m.partition("=")[2]).split("+")]
    return bool(dirs) and all(Path(d, "manifest.json").is_file() for d in dirs)


def _torch_threads(args: argparse.Namespace) -> None:
    """``--threads N`` for torch, set before a model loads (exports' engines take theirs;
    ``serve`` sets them in each worker as it loads, where its models may come from
    TRANSDUCE_SERVE_MODEL)."""
    if args.command == "serve":
        return
    if getattr(args, "threads", 0) and not _exports_only(args):
        import torch

        torch.set_num_threads(args.threads)


class ClosedStream:
    """Stands in for a standard stream the shell closed (``<&-``, ``>&-``), which Python
    leaves as None: reading or writing it is one line naming it, not an AttributeError
    traceback (or, for a bare ``print``, results silently lost)."""

    def __init__(self, which: str):
        self.which = which

    def _refuse(self, *args: object, **kwargs: object):
        name = "input" if self.which == "stdin" else "output"
        raise DataError(f"<{self.which}>", None, f"the standard {name} is closed")

    read = readline = readlines = write = writelines = fileno = __iter__ = _refuse
    buffer = property(_refuse)

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass


def entry() -> None:
    """The ``transduce`` command and ``python -m transduce``: :func:`main`, then exit."""
    from transduce.inference.textio import exit_process

    exit_process(main())


def main(argv: list[str] | None = None) -> int:
    with terminating():  # SIGTERM: Terminated, handled as an interrupt (transduce/signals.py)
        try:
            return _main(argv)
        except KeyboardInterrupt as err:  # before the command began (its parser's imports)
            said, code = (
                ("terminated by SIGTERM", 143)
                if isinstance(err, Terminated)
                else (
                    "interrupted",
                    130,
                )
            )
            print(f"transduce: {said}", file=sys.stderr)
            return code


def _main(argv: list[str] | None) -> int:
    for which in ("stdin", "stdout"):
        if getattr(sys, which) is None:  # closed by the shell: Python gives None
            setattr(sys, which, ClosedStream(which))
    args = build_parser().parse_args(argv)
    opt.configure_logging(args.quiet, args.verbose)
    try:
        _torch_threads(args)  # inside: no torch installed is a one-line error
        args.func(args)
    except BrokenPipeError:  # stdout's reader left (`| head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error
        sys.stderr.flush()  # then no interpreter shutdown: the input's reader thread may
        os._exit(141)  # hold stdin's lock (a fatal error at exit); 141: 128 + SIGPIPE
    except (ConfigError, DataError, FileNotFoundError, FileExistsError, ValueError) as err:
        if os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce {args.command}: error: {said(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        note = f" ({err})" if str(err) else ""  # e.g. how many lines an --output had
        if isinstance(err, Terminated):  # 143 = 128 + SIGTERM, as a shell reports it
            print(f"transduce {args.command}: terminated by SIGTERM{note}", file=sys.stderr)
            return 143
        print(f"transduce {args.command}: interrupted{note}", file=sys.stderr)
        return 130
    except (ModuleNotFoundError, OSError, MemoryError, RuntimeError) as err:
        line = environment_problem(err)
        if line is None or os.environ.get("TRANSDUCE_DEBUG"):
            raise
        print(f"transduce {args.command}: error: {line}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    entry()
