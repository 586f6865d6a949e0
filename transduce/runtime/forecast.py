"""Forecasts from an exported forecasting run (``transduce export onnx`` of a run with a
``series`` section), on onnxruntime and numpy: the runtime's counterpart of
:class:`transduce.forecasting.pipeline.Forecaster`. Both are a
:class:`~transduce.forecasting.windowed.WindowForecaster` (the same windows, covariates,
scaling and conformal intervals); only the roll-out differs, and here it imports no torch.
``transduce forecast`` and ``python -m transduce.runtime forecast`` use it for an export."""

from __future__ import annotations

import os

import numpy as np

from transduce.data.windows import WindowArrays, WindowSpec
from transduce.forecasting import conformal, normalized, phase
from transduce.forecasting.windowed import WindowForecaster
from transduce.runtime.model import ExportError, OnnxModel
from transduce.runtime.translate import rollout


class ExportedForecaster(WindowForecaster):
    """``ExportedForecaster.load(DIR).forecast(series) -> [N, horizon]`` in the data's units;
    ``spec``: the run's windows (lookback, horizon, period, scaling, covariates)."""

    engine = "onnx"

    def __init__(self, model: OnnxModel):
        manifest = model.manifest
        if manifest.get("kind") != "series":
            raise ExportError(f"{model.dir}: a text export; forecast needs a forecasting run's")
        fields = dict(manifest["series"])
        self.out_dim: int = fields.pop("output_dim", 1)
        self.levels = tuple(fields.pop("levels", ()))
        self.covariate_names = tuple(fields.pop("covariate_names", ()))
        try:
            spec = WindowSpec(**fields)
        except TypeError as err:  # a field this version does not know, or one missing
            raise ExportError(f"{model.dir / 'manifest.json'}: series: {err}") from None
        self.model, self.manifest, self.spec = model, manifest, spec
        self.calibration = conformal.load(model.dir)  # copied from the run by the export
        self.normalized = normalized.load(model.dir)  # likewise, where the run has one
        self.ends = phase.load_ends(model.dir)  # likewise: where the phase counts from

    @classmethod
    def load(
        cls, model_dir: str | os.PathLike, threads: int = 0, device: str = "cpu"
    ) -> ExportedForecaster:
        return cls(OnnxModel(model_dir, threads, device))

    def rollout_windows(self, w: WindowArrays, batch_size: int = 512) -> np.ndarray:
        """The model's outputs on windows ``w``, scaled: ``[N, H, D]`` (D = 1, or the
        median then ``(lo, hi)`` per learned level)."""
        horizon, out = w.exog.shape[1], []
        for i in range(0, len(w.src), batch_size):
            first = np.repeat(w.start[i : i + batch_size, None, :], horizon, axis=1)  # [b, H, 1]
            tgt_in = np.concatenate([first, w.exog[i : i + batch_size]], -1)  # [b, H, 1 + C]
            pred, _ = rollout(self.model, w.src[i : i + batch_size], tgt_in, self.out_dim)
            out.append(np.asarray(pred))  # [b, H, D]
        return np.concatenate(out).astype(np.float64)
