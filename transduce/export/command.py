"""``transduce export ENGINE`` and the engine choice of ``translate`` / ``evaluate``: both
read the engines registered in :mod:`transduce.engines`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transduce import engines, loading

ENGINES = ("auto", *engines.ENGINES)  # the choices of --engine


def export_command(args: argparse.Namespace) -> None:
    from transduce.export.destination import export_into

    export = engines.get(args.format).export_function()

    def build(tmp: Path) -> Path:  # built beside --out, renamed into place when complete
        return export(args.model, tmp, args.checkpoint, args.quantize)

    out = export_into(Path(args.out), Path(args.model), build)
    manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    keys = ("engine", "preset", "quantize")
    print(json.dumps({"out": str(out), **{k: manifest.get(k) for k in keys}}))


def add_parser(sub) -> None:
    """Register ``export`` with one subcommand per exporting engine on the CLI's subparsers."""
    p = sub.add_parser("export", help="export a trained model to ONNX or CTranslate2")
    formats = p.add_subparsers(dest="format", required=True)
    for engine in engines.exporters():
        q = formats.add_parser(engine.name, help=engine.help)
        q.add_argument("--model", required=True, help="run directory")
        q.add_argument("--out", required=True, help="directory to write")
        q.add_argument(
            "--checkpoint",
            choices=["best", "last", "averaged"],
            default="best",
            help="which weights of the run to export",
        )
        # One spelling for every engine; --quantization stays as ct2's old name for it.
        q.add_argument(
            "--quantize",
            "--quantization",
            dest="quantize",
            default=None,
            choices=engine.quantize,
            help="weight type (default: float32 weights)",
        )
        q.set_defaults(func=export_command)


def add_engine_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto: the exported directory's engine (manifest.json), else torch",
    )


def resolve_engine(model_dir: str, engine: str = "auto") -> str:
    """The engine's name for ``model_dir`` (:func:`transduce.loading.resolve`)."""
    return loading.resolve(model_dir, engine).name


def load_translator(args: argparse.Namespace):
    """The translator a decoding command uses, for the chosen engine; several ``--model``
    directories make an ensemble (torch engine: it averages the runs' log-probabilities).
    Options the engine cannot honour are refused here, naming their flags."""
    from transduce.commands.options import flag_name, options_from_args
    from transduce.config import ConfigError

    models = args.model if isinstance(args.model, list) else [args.model]
    found = {resolve_engine(m, getattr(args, "engine", "auto")) for m in models}
    if len(models) > 1 and found != {"torch"}:
        raise ConfigError(
            "--model: an ensemble decodes training runs with the torch "
            "engine; exported directories decode one at a time"
        )
    if len(models) > 1:
        from transduce.inference.ensemble import EnsembleTranslator

        translator = EnsembleTranslator.load(models, args.checkpoint, device=args.device)
    else:
        engine = found.pop()
        if engine != "torch" and getattr(args, "checkpoint", "best") != "best":
            # an export holds one set of weights (the ones exported): say so, not ignore it
            raise ConfigError(
                f"--checkpoint {args.checkpoint}: {models[0]} is an export of one checkpoint; "
                "export that checkpoint (transduce export ... --checkpoint) to decode it"
            )
        translator = loading.load(
            models[0], engine, args.checkpoint, args.device, getattr(args, "threads", 0)
        )
    if hasattr(args, "sample"):  # a command with the decoding flags
        translator.check(options_from_args(args), flag_name)
    return translator
