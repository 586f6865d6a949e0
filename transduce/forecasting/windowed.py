"""What every forecaster does around its model, without torch: the forecast windows (with
covariates), the point forecast and the conformal intervals (:mod:`.conformal`). A subclass
supplies ``spec``, ``calibration``, ``covariate_names`` and ``rollout_windows`` (the model):
:class:`transduce.forecasting.pipeline.Forecaster` on torch, and
:class:`transduce.runtime.forecast.ExportedForecaster` on onnxruntime."""

from __future__ import annotations

import functools

import numpy as np

from transduce.config import ConfigError
from transduce.data.windows import WindowArrays, WindowSpec, left_pad, make_windows, unscale
from transduce.forecasting import conformal


class WindowForecaster:
    """``forecast(series) -> [N, horizon]`` and ``forecast_intervals`` in the data's units,
    over the subclass's ``rollout_windows(windows, batch_size) -> [N, H, D]`` (scaled)."""

    spec: WindowSpec
    calibration: dict | None = None  # conformal.json of the run, or None
    normalized: dict | None = None  # normalized.json of the run, or None
    covariate_names: tuple[str, ...] = ()
    ends: dict | None = None  # series_ends.json of the run: where the phase counts from

    def rollout_windows(self, w: WindowArrays, batch_size: int = 512) -> np.ndarray:
        raise NotImplementedError

    def windows(
        self, series: list[np.ndarray], covariates=None, future=None, origin: int | np.ndarray = 0
    ) -> WindowArrays:
        """The forecast windows: the last ``lookback`` values of each series, with its
        covariates (``[n_i, Cf + Cp]`` per series) and the future-known ones of the
        forecast steps (``[>= H, Cf]`` per series) when the run was trained with them.
        ``origin`` (one, or one per series): where the histories end relative to the end
        the phase input counts from (:mod:`transduce.forecasting.phase`; a backtest's
        history ``cut`` values before its series' end: ``-cut``); 0, their own end."""
        spec, n = self.spec, len(series)
        hist = np.stack([left_pad(x, spec.lookback) for x in series])  # [N, L]
        origins = np.broadcast_to(np.asarray(origin, dtype=np.int64), (n,)).copy()
        if not spec.covariates + spec.past_covariates:
            return make_windows(hist, origins, spec, None)
        need = spec.covariates + spec.past_covariates
        if covariates is None or (spec.covariates and future is None):
            raise ConfigError(
                f"this run was trained with covariates {self.covariate_names}: "
                "give their history (and future values of the future-known "
                "ones)"
            )
        past = np.stack(
            [
                _pad_rows(np.asarray(c, float).reshape(len(c), need), spec.lookback)
                for c in covariates
            ]
        )
        fut = np.zeros((n, spec.horizon, spec.covariates))
        for i, f in enumerate(future if spec.covariates else []):
            f = np.asarray(f, float).reshape(len(f), -1)
            if len(f) < spec.horizon:
                raise ConfigError(
                    f"series {i}: {len(f)} future covariate rows, the horizon needs {spec.horizon}"
                )
            fut[i] = f[: spec.horizon, : spec.covariates]
        return make_windows(hist, origins, spec, None, past, fut)

    def forecast(
        self,
        series: list[np.ndarray],
        batch_size: int = 512,
        covariates=None,
        future=None,
        origin: int | np.ndarray = 0,
    ) -> np.ndarray:
        """Forecast ``horizon`` values after the end of each series; ``[N, horizon]``
        (``origin`` as :meth:`windows`)."""
        w = self.windows(series, covariates, future, origin)
        return unscale(self.rollout_windows(w, batch_size)[:, :, 0], w.level, self.spec)

    def forecast_intervals(
        self,
        series: list[np.ndarray],
        levels: list[float],
        batch_size: int = 512,
        covariates=None,
        future=None,
        method: str = "conformal",
        origin: int | np.ndarray = 0,
    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The point forecast ``[N, H]`` and, per level (``"80"``), the conformal interval
        ``(lo, hi)``, each ``[N, H]``, in the data's units; ``method="normalized"``: each
        series' band scaled by the model's recent errors on it, with the run's stored
        normalized calibration (:func:`transduce.forecasting.normalized.apply`).
        ``origin`` as :meth:`windows`."""
        if method == "normalized" and levels:
            return self._normalized(series, levels, batch_size, covariates, origin)
        if levels and self.calibration is None:
            raise ConfigError(
                "this run has no conformal calibration (conformal.json; runs "
                "trained before intervals existed, or one stopped before it finished): "
                "resume it (transduce train --resume --out RUN) or retrain it"
            )
        w = self.windows(series, covariates, future, origin)
        pred = self.rollout_windows(w, batch_size)
        point = unscale(pred[:, :, 0], w.level, self.spec)
        bands = {}
        for level in levels:
            lo, hi = conformal.bands(pred, self.calibration, level)
            bands[conformal.label(level)] = (
                unscale(lo, w.level, self.spec),
                unscale(hi, w.level, self.spec),
            )
        return point, bands

    def origins(self, ids: list[str], timestamps: list[list] | None) -> np.ndarray:
        """Per series, the steps its history ends after the run's training series ended
        (:func:`transduce.forecasting.phase.origins`): the ``origin`` to forecast with."""
        from transduce.forecasting.phase import origins

        return origins(self.ends, ids, timestamps)

    def _normalized(self, series, levels, batch_size, covariates, origin=0):
        from transduce.forecasting import normalized

        if self.normalized is None:
            raise ConfigError(
                "this run has no normalized calibration (normalized.json: written by runs "
                "trained with interval levels and no covariates); use conformal intervals"
            )
        if covariates is not None:
            raise ConfigError("normalized intervals: not for runs with covariates")
        try:
            forecast = functools.partial(self.forecast, batch_size=batch_size)
            return normalized.apply(forecast, series, self.normalized, levels, origin)
        except ValueError as err:
            raise ConfigError(str(err)) from None


def _pad_rows(rows: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` rows; a shorter history repeats its first row (as left_pad)."""
    if len(rows) >= length:
        return rows[-length:]
    return np.concatenate([np.repeat(rows[:1], length - len(rows), 0), rows])
