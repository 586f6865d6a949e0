"""Forecasts from an exported forecasting run (``transduce export onnx`` of a run with a
``series`` section), on onnxruntime and numpy: the runtime's counterpart of
:class:`transduce.forecasting.pipeline.Forecaster`, with the same windows, roll-out and
scaling, and no torch. ``transduce forecast`` and ``python -m transduce.runtime forecast``
use it for an exported directory."""

from __future__ import annotations

import os

import numpy as np

from transduce.data.series import WindowSpec, left_pad, make_windows, unscale
from transduce.runtime.model import ExportError, OnnxModel
from transduce.runtime.translate import rollout


def forecast_inputs(series: list[np.ndarray], spec: WindowSpec):
    """The model's inputs for forecasting after the end of each series: ``src [N, L, F]``,
    ``tgt_in [N, H, 1 + C]`` (the last value repeated, then the known exogenous features)
    and the windows (whose ``level [N]`` undoes the scaling)."""
    hist = np.stack([left_pad(x, spec.lookback) for x in series])  # [N, L]
    w = make_windows(hist, np.zeros(len(series), dtype=np.int64), spec, None)
    first = np.repeat(w.start[:, None, :], spec.horizon, axis=1)  # [N, H, 1]
    return w.src, np.concatenate([first, w.exog.astype(np.float32)], -1), w


class ExportedForecaster:
    """``ExportedForecaster.load(DIR).forecast(series) -> [N, horizon]`` in the data's units;
    ``spec``: the run's windows (lookback, horizon, period, scaling)."""

    engine = "onnx"

    def __init__(self, model: OnnxModel):
        manifest = model.manifest
        if manifest.get("kind") != "series":
            raise ExportError(f"{model.dir}: a text export; forecast needs a forecasting run's")
        fields = dict(manifest["series"])
        self.out_dim: int = fields.pop("output_dim", 1)
        self.model, self.manifest, self.spec = model, manifest, WindowSpec(**fields)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, threads: int = 0) -> ExportedForecaster:
        return cls(OnnxModel(model_dir, threads))

    def forecast(self, series: list[np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Forecast ``horizon`` values after the end of each series; ``[N, horizon]``."""
        src, tgt_in, w = forecast_inputs(series, self.spec)
        out = []
        for i in range(0, len(series), batch_size):
            pred, _ = rollout(self.model, src[i : i + batch_size], tgt_in[i : i + batch_size],
                              self.out_dim)  # fmt: skip
            out.append(np.asarray(pred)[:, :, 0])  # [b, H]
        return unscale(np.concatenate(out).astype(np.float64), w.level, self.spec)
