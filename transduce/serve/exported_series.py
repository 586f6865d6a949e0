"""A forecasting run exported by ``transduce export onnx``, served on onnxruntime and numpy
(:class:`transduce.runtime.forecast.ExportedForecaster`): ``/v1/forecast`` without torch,
as ``python -m transduce.runtime forecast`` forecasts offline. Its requests, intervals,
covariates and phase are the training run's (both forecasters are a
:class:`~transduce.forecasting.windowed.WindowForecaster`); only the description differs,
read from the export's manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transduce.serve.backend import SeriesModel


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
