"""The models a server holds, behind one small interface: ``load -> decode(items, options)``.

:class:`TextModel` wraps :class:`transduce.translate.Translator` and :class:`SeriesModel`
wraps :class:`transduce.forecasting.pipeline.Forecaster`. The server and its batcher only
call ``decode`` (a batch in, one result per item out, in order) and ``describe``, so another
engine (an exported graph, say) plugs in as one more class with those two methods.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from transduce.config import ConfigError, load_config
from transduce.translate import DecodeOptions, Translation


class ServedModel(Protocol):
    """What the server needs from a model: its name, kind, a batched decode and a summary."""

    name: str
    kind: str  # "text" or "series"

    def decode(self, items: list[Any], options: Any) -> list[Any]: ...

    def describe(self) -> dict[str, Any]: ...


def training_summary(run_dir: Path, early_stop_metric: str) -> dict[str, Any]:
    """Steps trained and the best validation record of ``metrics.jsonl`` (empty if none)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a crash says nothing about the best record
    valid = [r for r in rows if r.get("split") == "valid" and early_stop_metric in r]
    summary: dict[str, Any] = {"steps": max((r.get("step", 0) for r in rows), default=0)}
    if valid:
        sign = 1 if early_stop_metric == "loss" else -1
        best = min(valid, key=lambda r: sign * r[early_stop_metric])
        summary["best"] = {k: v for k, v in best.items() if k not in ("split", "seconds")}
    return summary


class TextModel:
    """A text-to-text run: ``decode(texts, DecodeOptions)`` -> n-best lists, in input order."""

    kind = "text"

    def __init__(self, name: str, run_dir: Path, translator) -> None:
        self.name, self.run_dir, self.translator = name, run_dir, translator
        self.fields: tuple[str, ...] = tuple(translator.cfg.data.src_fields) or ("text",)
        self.max_len: int = translator.cfg.decode.max_len  # output cap when a request sets none

    @classmethod
    def load(cls, name: str, run_dir: Path, checkpoint: str = "best", device: str = "cpu"):
        from transduce.translate import Translator

        return cls(name, run_dir, Translator.load(run_dir, checkpoint, device=device))

    def decode(self, items: list[str], options: DecodeOptions) -> list[list[Translation]]:
        return self.translator.decode(items, options)

    def describe(self) -> dict[str, Any]:
        cfg, pipe = self.translator.cfg, self.translator.pipeline
        params = sum(p.numel() for p in self.translator.model.parameters())
        defaults = {**asdict(DecodeOptions()), **asdict(cfg.decode)}
        defaults.pop("batch_size", None)
        defaults.pop("attention", None)
        return {
            "name": self.name,
            "kind": self.kind,
            "preset": cfg.model.preset,
            "cell": cfg.model.cell,
            "parameters": params,
            "vocab": {"source": len(pipe.src_vocab), "target": len(pipe.tgt_vocab)},
            "tokenizers": {"source": cfg.data.src_tokenizer, "target": cfg.data.tgt_tokenizer},
            "input_fields": list(self.fields),
            "training": training_summary(self.run_dir, cfg.train.early_stop_metric),
            "decoding_defaults": defaults,
        }


class SeriesModel:
    """A forecasting run: ``decode(histories, None)`` -> one ``[horizon]`` array per series."""

    kind = "series"

    def __init__(self, name: str, run_dir: Path, forecaster) -> None:
        self.name, self.run_dir, self.forecaster = name, run_dir, forecaster

    @classmethod
    def load(cls, name: str, run_dir: Path, checkpoint: str = "best", device: str = "cpu"):
        from transduce.forecasting.pipeline import Forecaster

        return cls(name, run_dir, Forecaster.load(run_dir, checkpoint, device=device))

    def decode(self, items: list[np.ndarray], options: Any = None) -> list[np.ndarray]:
        return list(self.forecaster.forecast(items))

    def describe(self) -> dict[str, Any]:
        cfg, spec = self.forecaster.cfg, self.forecaster.spec
        params = sum(p.numel() for p in self.forecaster.model.parameters())
        return {
            "name": self.name,
            "kind": self.kind,
            "preset": cfg.model.preset,
            "cell": cfg.model.cell,
            "parameters": params,
            "vocab": None,
            "input_fields": ["values"],
            "horizon": spec.horizon,
            "lookback": spec.lookback,
            "period": spec.period,
            "training": training_summary(self.run_dir, cfg.train.early_stop_metric),
            "decoding_defaults": {},
        }


def parse_model_specs(specs: list[str]) -> dict[str, Path]:
    """``DIR`` or ``NAME=DIR`` per spec -> {name: run dir}; the default name is DIR's name."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = "", spec
        run_dir = Path(path)
        name = name or run_dir.resolve().name
        if not name or any(c in name for c in "/ \t"):
            raise ConfigError(f"--model {spec}: give a name without spaces or slashes")
        if name in out:
            raise ConfigError(f"--model {spec}: a model named {name!r} is given twice")
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--model {spec}: {run_dir} is not a transduce run (no config.yaml)")
        out[name] = run_dir
    if not out:
        raise ConfigError("serve: give at least one --model DIR")
    return out


def load_models(
    specs: list[str], checkpoint: str = "best", device: str = "cpu"
) -> dict[str, ServedModel]:
    """Load every ``--model`` spec; a run with a ``series`` section is a forecasting model."""
    models: dict[str, ServedModel] = {}
    for name, run_dir in parse_model_specs(specs).items():
        cfg = load_config(run_dir / "config.yaml")
        kind = SeriesModel if cfg.series is not None else TextModel
        models[name] = kind.load(name, run_dir, checkpoint, device)
    return models


def describe_all(models: dict[str, ServedModel]) -> list[dict[str, Any]]:
    return [m.describe() for m in models.values()]
