"""The models a server holds, behind one small interface: ``load -> decode(items, options)``.

:class:`TextModel` wraps :class:`transduce.inference.translate.Translator` and :class:`SeriesModel`
wraps :class:`transduce.forecasting.pipeline.Forecaster`. The server and its batcher only
call ``decode`` (a batch in, one result per item out, in order), ``describe`` and, for text,
``check`` (the decoding options it cannot honour). :class:`ExportedModel` serves a directory
written by ``transduce export onnx|ct2`` through the torch-free :mod:`transduce.runtime`, and
``NAME=DIR1+DIR2`` serves an ensemble (:mod:`transduce.inference.ensemble`) of training runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from transduce.config import Config, ConfigError, load_config
from transduce.errors import OptionError
from transduce.inference.decoding import DecodeOptions, Translation
from transduce.serve.series_items import covariate_names, split_items
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


def training_summary(run_dir: Path, early_stop_metric: str) -> dict[str, Any]:
    """Steps trained and the best validation record of ``metrics.jsonl`` (empty if none)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # JSONDecodeError, or a number too long to read
            continue  # a line cut short by a crash says nothing about the best record
    # a damaged file may hold any JSON: keep records (objects) with numbers where needed
    rows = [r for r in rows if isinstance(r, dict)]
    valid = [r for r in rows if r.get("split") == "valid"]
    valid = [r for r in valid if isinstance(r.get(early_stop_metric), (int, float))]
    steps = [r["step"] for r in rows if isinstance(r.get("step"), int)]
    summary: dict[str, Any] = {"steps": max(steps, default=0)}
    if valid:
        sign = 1 if early_stop_metric == "loss" else -1
        best = min(valid, key=lambda r: sign * r[early_stop_metric])
        summary["best"] = {k: v for k, v in best.items() if k not in ("split", "seconds")}
    return summary


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
            **_identity(self, cfg, params),
            "vocab": {"source": len(pipe.src_vocab), "target": len(pipe.tgt_vocab)},
            "tokenizers": {"source": cfg.data.src_tokenizer, "target": cfg.data.tgt_tokenizer},
            "input_fields": list(self.fields),
            **_provenance(self, cfg),
            "decoding_defaults": _defaults(asdict(cfg.decode)),
        }


def _training(run_dir: Path, members: list[Path] | None, metric: str) -> dict[str, Any]:
    if not members:
        return training_summary(run_dir, metric)
    return {"members": [training_summary(d, metric) for d in members]}


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
            from transduce.serve.exported_series import ExportedSeriesModel

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


class SeriesModel:
    """A forecasting run (or a :class:`transduce.inference.ensemble.ForecastEnsemble`):
    ``decode(histories, None)`` -> one ``[horizon]`` array per series."""

    kind = "series"
    engine = "torch"

    def __init__(self, name: str, run_dir: Path, forecaster, members: list[Path] | None = None):
        self.name, self.run_dir, self.forecaster = name, run_dir, forecaster
        self.members = members

    @classmethod
    def load(cls, name: str, run_dir: Path, checkpoint: str = "best", device: str = "cpu"):
        from transduce.forecasting.pipeline import Forecaster

        return cls(name, run_dir, Forecaster.load(run_dir, checkpoint, device=device))

    @classmethod
    def load_ensemble(
        cls, name: str, run_dirs: list[Path], checkpoint: str = "best", device: str = "cpu"
    ) -> SeriesModel:
        """The median of the members' forecasts."""
        from transduce.inference.ensemble import ForecastEnsemble

        ensemble = ForecastEnsemble.load(run_dirs, checkpoint, device, combine="median")
        return cls(name, run_dirs[0], ensemble, list(run_dirs))

    def decode(self, items: list[np.ndarray], options: Any = None) -> list[Any]:
        """``options``: () or (the interval levels, the interval method); with levels, each
        item's result is ``(point, {"lo-80": ..., "hi-80": ...})``."""
        series, extra = split_items(items)  # and the covariates of a model with them
        if not options:
            return list(self.forecaster.forecast(series, 512, **extra))
        levels, method = options
        point, bands = self.forecaster.forecast_intervals(
            series, list(levels), 512, method=method, **extra
        )
        sides = {f"{s}-{k}": b[j] for k, b in bands.items() for j, s in enumerate(("lo", "hi"))}
        return [
            (point[i], {key: bound[i] for key, bound in sides.items()}) for i in range(len(items))
        ]

    def levels(self, finite: bool = False, method: str = "conformal") -> list[str]:
        """The interval levels this run was calibrated for by ``method`` (``"80"``...; none:
        no intervals); ``finite``: those it gives finite bounds for (:func:`conformal.
        levels_of`); ``normalized``: those of every member's normalized calibration."""
        from transduce.forecasting.conformal import levels_of

        if method == "normalized":
            members = getattr(self.forecaster, "members", [self.forecaster])
            found = [getattr(m, "normalized", None) or {"levels": {}} for m in members]
            return sorted(set.intersection(*(set(n["levels"]) for n in found)), key=float)
        return levels_of(getattr(self.forecaster, "calibration", None), finite)

    def describe(self) -> dict[str, Any]:
        forecasters = getattr(self.forecaster, "members", [self.forecaster])
        cfg = forecasters[0].cfg
        params = sum(p.numel() for f in forecasters for p in f.model.parameters())
        return {
            **_identity(self, cfg, params),
            **self.series_fields(),
            **_provenance(self, cfg),
            "decoding_defaults": {"combine": "median"} if self.members else {},
        }

    def series_fields(self) -> dict[str, Any]:
        """A description's windows, intervals and covariates (runs and exports alike)."""
        spec, (names, known) = self.forecaster.spec, covariate_names(self.forecaster)
        return {
            "vocab": None,
            "input_fields": ["values"],
            "horizon": spec.horizon,
            "lookback": spec.lookback,
            "period": spec.period,
            "levels": self.levels(finite=True),
            "normalized_levels": self.levels(method="normalized"),
            "covariates": list(names),
            "future_covariates": list(names[:known]),
        }


def _identity(model: TextModel | SeriesModel, cfg: Config, params: int) -> dict[str, Any]:
    """The first fields of a torch model's description: what it is and how large."""
    return {
        "name": model.name,
        "kind": model.kind,
        "engine": model.engine,
        "preset": cfg.model.preset,
        "cell": None if cfg.model.preset == "transformer" else cfg.model.cell,
        "parameters": params,
    }


def _provenance(model: TextModel | SeriesModel, cfg: Config) -> dict[str, Any]:
    """Where a torch model's weights come from: its ensemble members and its training."""
    return {
        "members": [str(d) for d in model.members] if model.members else None,
        "training": _training(model.run_dir, model.members, cfg.train.early_stop_metric),
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
