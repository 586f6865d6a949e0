"""The models a server holds, behind one small interface: ``load -> decode(items, options)``.

:class:`TextModel` wraps :class:`transduce.inference.translate.Translator`; the forecasting
models are in :mod:`transduce.serve.series_model`. The server and its batcher only call
``decode`` (a batch in, one result per item out, in order), ``describe`` and, for text,
``check`` (the decoding options it cannot honour). :class:`ExportedModel` serves a directory
written by ``transduce export onnx|ct2`` through the torch-free :mod:`transduce.runtime`, and
``NAME=DIR1+DIR2`` serves an ensemble (:mod:`transduce.inference.ensemble`) of training runs.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from transduce.config import ConfigError, load_config
from transduce.errors import OptionError
from transduce.inference.decoding import DecodeOptions, Translation
from transduce.serve.describe import identity, provenance
from transduce.serve.series_model import SeriesModel
from transduce.serve.stopping import interruptible


class TextItem(str):
    """An input text that carries its target prefix and constraints through the batcher
    (which measures and orders items as the strings they are)."""

    prefix: str = ""
    constraints: tuple[str, ...] = ()

    def __new__(cls, text: str, prefix: str = "", constraints=()) -> TextItem:
        item = super().__new__(cls, text)
        item.prefix, item.constraints = prefix, tuple(constraints)
        return item


def decode_items(translator, items: list[str], options: DecodeOptions, on_token=None) -> list:
    """``translator.decode`` of batcher items, with their prefixes and constraints."""
    targets: dict[str, Any] = {}
    prefixes = [getattr(i, "prefix", "") for i in items]
    constraints = [list(getattr(i, "constraints", ())) for i in items]
    if any(prefixes):
        targets["prefixes"] = prefixes
    if any(constraints):
        targets["constraints"] = constraints
    if on_token is not None:
        targets["on_token"] = on_token
    return translator.decode([str(i) for i in items], options, **targets)


class ServedModel(Protocol):
    """What the server needs from a model: its name, kind, a batched decode and a summary."""

    name: str
    kind: str  # "text" or "series"

    def decode(self, items: list[Any], options: Any) -> list[Any]: ...

    def describe(self) -> dict[str, Any]: ...


class UnsupportedOption(ValueError):
    """A decoding option the model's engine cannot honour; ``field`` is the request's name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _defaults(base: dict[str, Any]) -> dict[str, Any]:
    """The decoding defaults a model shows, by the request's names (``length_penalty``,
    not ``alpha``: sent back, they were a 422): ``DecodeOptions``' fields over ``base``."""
    from transduce.serve.schemas import HTTP_FIELDS

    out = {**asdict(DecodeOptions()), **base}  # then a request's own default where it has one
    return {n: f.metadata.get("http_default", out[f.name]) for f, n in HTTP_FIELDS if f.name in out}


class TextModel:
    """A text-to-text run (or an ensemble of runs) on torch: ``decode(texts, DecodeOptions)``
    -> n-best lists, in input order."""

    kind = "text"
    engine = "torch"

    def __init__(self, name: str, run_dir: Path, translator, members: list[Path] | None = None):
        self.name, self.run_dir, self.translator = name, run_dir, translator
        self.members = members  # the runs of an ensemble; None for a single run
        self.fields: tuple[str, ...] = tuple(translator.cfg.data.src_fields) or ("text",)
        self.max_len: int = translator.cfg.decode.max_len  # output cap when a request sets none
        interruptible(translator)

    @classmethod
    def load(cls, name: str, run_dir: Path, checkpoint: str = "best", device: str = "cpu"):
        from transduce.loading import load

        return cls(name, run_dir, load(run_dir, "torch", checkpoint, device))

    @classmethod
    def load_ensemble(
        cls, name: str, run_dirs: list[Path], checkpoint: str = "best", device: str = "cpu"
    ) -> TextModel:
        """Members' log-probabilities averaged at every step
        (:mod:`transduce.inference.ensemble`)."""
        from transduce.inference.ensemble import EnsembleTranslator

        translator = EnsembleTranslator.load(run_dirs, checkpoint, device=device)
        return cls(name, run_dirs[0], translator, list(run_dirs))

    def check(self, options: DecodeOptions) -> None:
        check_options(self.translator, options)

    def decode(self, items: list[str], options: DecodeOptions) -> list[list[Translation]]:
        return decode_items(self.translator, items, options)

    def describe(self) -> dict[str, Any]:
        cfg, pipe = self.translator.cfg, self.translator.pipeline
        params = sum(p.numel() for p in self.translator.model.parameters())
        return {
            **identity(self, cfg, params),
            "vocab": {"source": len(pipe.src_vocab), "target": len(pipe.tgt_vocab)},
            "tokenizers": {"source": cfg.data.src_tokenizer, "target": cfg.data.tgt_tokenizer},
            "input_fields": list(self.fields),
            **provenance(self, cfg),
            "decoding_defaults": _defaults(asdict(cfg.decode)),
        }


SIDES = (("source", "src"), ("target", "tgt"))


def check_options(translator, options: DecodeOptions) -> None:
    """Refuse what the translator's engine cannot honour (``Engine.refuses``), naming the
    request field; a requested ``return_attention`` counts as asked for explicitly."""
    from transduce.serve.schemas import http_name

    try:
        translator.check(options, http_name, explicit=True)
    except OptionError as err:
        raise UnsupportedOption(err.field, err.message.removeprefix(f"{err.field}: ")) from None


class ExportedModel:
    """A text model exported by ``transduce export onnx|ct2``, run by :mod:`transduce.runtime`
    (no torch in the decode path); :meth:`check` refuses by name the options its engine
    declares it cannot honour (:mod:`transduce.engines`: CTranslate2's length penalty and
    attention)."""

    kind = "text"

    def __init__(self, name: str, model_dir: Path, translator) -> None:
        self.name, self.dir, self.translator = name, model_dir, translator
        self.manifest: dict[str, Any] = translator.manifest
        self.engine: str = self.manifest["engine"]
        text = self.manifest["text"]
        self.fields: tuple[str, ...] = tuple(text.get("input_fields") or ()) or ("text",)
        self.max_len: int = self.manifest["decode"]["max_len"]
        interruptible(translator)

    @classmethod
    def load(cls, name: str, model_dir: Path, threads: int = 0, device: str = "cpu") -> ServedModel:
        from transduce.loading import load
        from transduce.runtime.model import read_manifest

        if read_manifest(model_dir).get("kind") == "series":  # forecasts, torch-free too
            from transduce.serve.series_model import ExportedSeriesModel

            return ExportedSeriesModel.load(name, model_dir, threads, device)
        return cls(name, model_dir, load(str(model_dir), device=device, threads=threads))

    def check(self, options: DecodeOptions) -> None:
        check_options(self.translator, options)

    def decode(self, items: list[str], options: DecodeOptions) -> list[list[Any]]:
        return decode_items(self.translator, items, options)

    def describe(self) -> dict[str, Any]:
        from transduce.engines import get as get_engine
        from transduce.serve.schemas import http_name

        m, pipe = self.manifest, self.translator.pipeline
        sides = m["text"]
        return {
            "name": self.name,
            "kind": self.kind,
            "engine": self.engine,
            "preset": m["preset"],
            "cell": None if m["preset"] == "transformer" else m.get("cell"),
            "parameters": m.get("parameters"),  # exports do not record it (yet)
            "vocab": {"source": len(pipe.src.vocab), "target": len(pipe.tgt_vocab)},
            "tokenizers": {side: sides[key]["tokenizer"] for side, key in SIDES},
            "input_fields": list(self.fields),
            "unsupported_options": [http_name(f) for f in get_engine(self.engine).refuses],
            "export": {k: m.get(k) for k in ("source_run", "checkpoint", "quantize")},
            "training": {},
            "decoding_defaults": _defaults(m["decode"]),
        }


def _is_model_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "manifest.json").is_file()


def _spec_dirs(spec: str, path: str) -> list[Path]:
    """One directory, or the members of ``DIR1+DIR2[+...]`` (a directory whose own name
    holds a ``+`` is still one directory)."""
    if _is_model_dir(Path(path)) or "+" not in path:
        dirs = [Path(path)]
    else:
        dirs = [Path(p) for p in path.split("+")]
    for d in dirs:
        if not str(d) or str(d) == ".":
            raise ConfigError(f"--model {spec}: an empty directory name around '+'")
        if not _is_model_dir(d):
            raise ConfigError(
                f"--model {spec}: {d} is not a transduce run (no config.yaml) "
                "nor an export (no manifest.json)"
            )
    return dirs


def parse_model_specs(specs: list[str]) -> dict[str, list[Path]]:
    """``DIR``, ``NAME=DIR`` or ``NAME=DIR1+DIR2[+...]`` (an ensemble) per spec ->
    {name: directories}; the default name is DIR's name (members' names joined by ``+``)."""
    out: dict[str, list[Path]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        dirs = _spec_dirs(spec, path)
        name = name or "+".join(d.resolve().name for d in dirs)
        if not name or any(c in name for c in "/ \t"):
            raise ConfigError(f"--model {spec}: give a name without spaces or slashes")
        if name in out:
            raise ConfigError(f"--model {spec}: a model named {name!r} is given twice")
        out[name] = dirs
    if not out:
        raise ConfigError("serve: give at least one --model DIR")
    return out


def load_model(
    name: str,
    dirs: list[Path],
    checkpoint: str = "best",
    device: str = "cpu",
    engine: str = "auto",
    threads: int = 0,
) -> ServedModel:
    """One ``--model``: a run on torch (a ``series`` section: forecasting), an export on its
    runtime engine (``engine``: auto, or the one every directory must have), or an ensemble."""
    from transduce.loading import resolve

    engines = [resolve(d, engine).name for d in dirs]
    if len(dirs) == 1 and engines[0] != "torch":
        return ExportedModel.load(name, dirs[0], threads, device)
    if any(e != "torch" for e in engines):
        raise ConfigError(f"--model {name}: ensembles are of training runs, not exports")
    kinds = {load_config(d / "config.yaml").series is not None for d in dirs}
    if len(kinds) > 1:
        raise ConfigError(f"--model {name}: an ensemble mixes text and forecasting runs")
    cls = SeriesModel if kinds.pop() else TextModel
    if len(dirs) == 1:
        return cls.load(name, dirs[0], checkpoint, device)
    try:
        return cls.load_ensemble(name, dirs, checkpoint, device)
    except ValueError as err:  # members that cannot decode together
        raise ConfigError(f"--model {name}: {err}") from None


def load_models(
    specs: list[str],
    checkpoint: str = "best",
    device: str = "cpu",
    engine: str = "auto",
    threads: int = 0,
) -> dict[str, ServedModel]:
    """Load every ``--model`` spec (see :func:`parse_model_specs` and :func:`load_model`)."""
    return {
        name: load_model(name, dirs, checkpoint, device, engine, threads)
        for name, dirs in parse_model_specs(specs).items()
    }


def describe_all(models: dict[str, ServedModel]) -> list[dict[str, Any]]:
    return [m.describe() for m in models.values()]
