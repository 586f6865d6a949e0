"""Forecasting models a server holds: :class:`SeriesModel` wraps a training run's
:class:`transduce.forecasting.pipeline.Forecaster` (or an ensemble of runs), and
:class:`ExportedSeriesModel` a run exported by ``transduce export onnx``, served on
onnxruntime and numpy (:class:`transduce.runtime.forecast.ExportedForecaster`):
``/v1/forecast`` without torch. Both forecasters are a
:class:`~transduce.forecasting.windowed.WindowForecaster`, so requests, intervals,
covariates and phase are alike; only the descriptions differ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from transduce.serve.describe import identity, provenance
from transduce.serve.series_items import covariate_names, split_items


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
            **identity(self, cfg, params),
            **self.series_fields(),
            **provenance(self, cfg),
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


class ExportedSeriesModel(SeriesModel):
    """``decode(histories, options)`` as :class:`SeriesModel`'s, on the export's engine."""

    engine = "onnx"

    @classmethod
    def load(  # type: ignore[override]
        cls, name: str, model_dir: Path, threads: int = 0, device: str = "cpu"
    ) -> ExportedSeriesModel:
        from transduce.runtime.forecast import ExportedForecaster

        return cls(name, model_dir, ExportedForecaster.load(model_dir, threads, device))

    def describe(self) -> dict[str, Any]:
        m = self.forecaster.manifest
        return {
            "name": self.name,
            "kind": self.kind,
            "engine": self.engine,
            "preset": m.get("preset"),
            "cell": None if m.get("preset") == "transformer" else m.get("cell"),
            "parameters": m.get("parameters"),  # exports do not record it (yet)
            **self.series_fields(),
            "export": {k: m.get(k) for k in ("source_run", "checkpoint", "quantize")},
            "training": {},
            "decoding_defaults": {},
        }
