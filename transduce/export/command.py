"""``transduce export onnx|ct2`` and the engine choice of ``translate`` / ``evaluate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ENGINES = ("auto", "torch", "onnx", "ct2")


def export_command(args: argparse.Namespace) -> None:
    from transduce.export.destination import export_into

    if args.format == "onnx":
        from transduce.export.onnx import export_onnx

        def build(tmp: Path) -> Path:
            return export_onnx(args.model, tmp, args.checkpoint, args.quantize)
    else:
        from transduce.export.ct2 import export_ct2

        def build(tmp: Path) -> Path:
            return export_ct2(args.model, tmp, args.checkpoint, args.quantization)

    out = export_into(Path(args.out), Path(args.model), build)
    manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
    print(
        json.dumps(
            {
                "out": str(out),
                "engine": manifest["engine"],
                "preset": manifest["preset"],
                "quantize": manifest.get("quantize"),
            }
        )
    )


def add_parser(sub) -> None:
    """Register ``export`` (with ``onnx`` and ``ct2``) on the CLI's subparsers."""
    p = sub.add_parser("export", help="export a trained model to ONNX or CTranslate2")
    formats = p.add_subparsers(dest="format", required=True)
    for name, helptext in (
        ("onnx", "encoder, init_state, step and head graphs for onnxruntime (every preset)"),
        ("ct2", "a CTranslate2 model (transformer preset only)"),
    ):
        q = formats.add_parser(name, help=helptext)
        q.add_argument("--model", required=True, help="run directory")
        q.add_argument("--out", required=True, help="directory to write")
        q.add_argument("--checkpoint", choices=["best", "last", "averaged"], default="best",
                       help="which weights of the run to export")  # fmt: skip
        if name == "onnx":
            q.add_argument("--quantize", choices=["int8"], default=None,
                           help="dynamic int8 weights (onnxruntime quantizer)")  # fmt: skip
        else:
            q.add_argument(
                "--quantization",
                choices=["int8", "int16", "float32"],
                default=None,
                help="CTranslate2 weight type (default: float32)",
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
    """The engine for ``model_dir``: its manifest's for an export, torch for a run."""
    from transduce.config import ConfigError
    from transduce.runtime.model import read_manifest

    exported = Path(model_dir, "manifest.json").is_file()
    found = read_manifest(model_dir)["engine"] if exported else "torch"
    if engine in ("auto", found):
        return found
    if exported:
        raise ConfigError(f"--engine {engine}: {model_dir} is a {found} export")
    raise ConfigError(f"--engine {engine}: {model_dir} is a training run; export it first "
                      f"(transduce export {engine} --model {model_dir} --out DIR)")  # fmt: skip


def load_translator(args: argparse.Namespace):
    """The translator a decoding command uses, for the chosen engine; several ``--model``
    directories make an ensemble (torch engine: it averages the runs' log-probabilities)."""
    from transduce.config import ConfigError

    models = args.model if isinstance(args.model, list) else [args.model]
    engines = {resolve_engine(m, getattr(args, "engine", "auto")) for m in models}
    if len(models) > 1:
        if engines != {"torch"}:
            raise ConfigError("--model: an ensemble decodes training runs with the torch "
                              "engine; exported directories decode one at a time")  # fmt: skip
        from transduce.ensemble import EnsembleTranslator

        return EnsembleTranslator.load(models, args.checkpoint, device=args.device)
    if engines == {"torch"}:
        from transduce.translate import Translator

        return Translator.load(models[0], args.checkpoint, device=args.device)
    from transduce.runtime.__main__ import load

    return load(models[0], args.threads)
