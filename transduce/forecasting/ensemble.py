"""Forecast ensembles: several forecasting runs combined into one forecast.

A forecast ensemble combines whole forecasts: the median of the members' (the robust choice
of the M4 winners, Smyl 2020; Montero-Manso et al. 2020 combine by weighted mean) or their
mean. Intervals combine the same way, bound by bound (the median of the members' 95% upper
bounds is the ensemble's): a simple quantile-averaging rule (Lichtendahl, Grushka-Cockayne &
Winkler 2013, "Is It Better to Average Probabilities or Quantiles?").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np


def combine_forecasts(forecasts: Sequence[np.ndarray], how: str = "median") -> np.ndarray:
    """Members' forecasts ``[N, H]`` each -> one ``[N, H]``: their median or mean."""
    if how not in ("median", "mean"):
        raise ValueError(f"ensemble combination must be 'median' or 'mean', got {how!r}")
    shapes = {f.shape for f in forecasts}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members forecast different shapes: {sorted(shapes)}")
    stacked = np.stack(forecasts)  # [M, N, H]
    return np.median(stacked, 0) if how == "median" else stacked.mean(0)


class ForecastEnsemble:
    """Several forecasting runs as one ``forecast(series)``; they must share the horizon and
    the seasonal period (lookbacks, cells and seeds may differ: that is the point)."""

    def __init__(self, members: list, combine: str = "median", names: list[str] | None = None):
        names = names or [f"member {i}" for i in range(len(members))]
        first = members[0].spec
        covariates = tuple(getattr(members[0], "covariate_names", ()))
        for m, name in zip(members[1:], names[1:], strict=True):
            if (m.spec.horizon, m.spec.period) != (first.horizon, first.period):
                raise ValueError(
                    f"ensemble: {name} forecasts horizon {m.spec.horizon} with period "
                    f"{m.spec.period}, {names[0]} horizon {first.horizon} period {first.period}"
                )
            theirs = (tuple(getattr(m, "covariate_names", ())), m.spec.covariates)
            ours = (covariates, first.covariates)
            if theirs != ours:
                raise ValueError(
                    f"ensemble: {name} takes the covariates {list(theirs[0])} "
                    f"({theirs[1]} future-known), {names[0]} {list(ours[0])} ({ours[1]})"
                )
        combine_forecasts([np.zeros((1, 1))], combine)  # validate the rule early
        self.members, self.combine, self.spec = members, combine, first
        self.covariate_names, self.names = covariates, names

    @classmethod
    def load(
        cls,
        run_dirs: Sequence[str | os.PathLike],
        checkpoint: str = "best",
        device: str = "cpu",
        combine: str = "median",
    ) -> ForecastEnsemble:
        from transduce.errors import run_dir_list
        from transduce.forecasting.pipeline import Forecaster

        run_dirs = run_dir_list(run_dirs, "ForecastEnsemble.load")
        members = [Forecaster.load(d, checkpoint, device=device) for d in run_dirs]
        return cls(members, combine, [str(d) for d in run_dirs])

    @property
    def ends(self) -> dict | None:
        """The first member's training series' ends (:meth:`origins` checks the others)."""
        return self.members[0].ends

    def origins(self, ids: list[str], timestamps: list[list] | None) -> np.ndarray:
        """The members' one origin per series; members whose training series ended at
        different times would each need their own (the first one's made the others read
        the calendar off): refused, naming the runs."""
        found = [m.origins(ids, timestamps) for m in self.members]
        for name, other in zip(self.names[1:], found[1:], strict=True):
            if not np.array_equal(found[0], other):
                raise ValueError(
                    f"ensemble: {name} and {self.names[0]} were trained on series that "
                    "end at different times, so their calendar phases differ here; "
                    "ensemble runs trained on the same series"
                )
        return found[0]

    def forecast(
        self,
        series: list[np.ndarray],
        batch_size: int = 512,
        covariates=None,
        future=None,
        origin: int | np.ndarray = 0,
    ) -> np.ndarray:
        """``[N, horizon]``: the combination of every member's forecast (covariates, future
        and origin as a member's :meth:`~transduce.forecasting.windowed.WindowForecaster.
        forecast` takes them)."""
        outs = [m.forecast(series, batch_size, covariates, future, origin) for m in self.members]
        return combine_forecasts(outs, self.combine)

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
        """The combined point forecast and each level's bounds combined bound by bound
        (each member's from its own calibration, ``method`` and ``origin`` as a member's)."""
        outs = [
            m.forecast_intervals(
                series, levels, batch_size, covariates, future, method=method, origin=origin
            )
            for m in self.members
        ]
        point = combine_forecasts([o[0] for o in outs], self.combine)
        bands = {
            key: tuple(
                combine_forecasts([o[1][key][j] for o in outs], self.combine) for j in (0, 1)
            )
            for key in outs[0][1]
        }
        return point, bands


def predict_ensemble(estimators: Sequence[Any], x: Any, combine: str = "median") -> np.ndarray:
    """The array API's ensemble: combine ``predict(x)`` of fitted estimators that predict
    the same kind of output (values, or class probabilities); a mix is refused by name, as
    the shapes alone did not tell a forecast from probabilities."""
    members = list(estimators)
    if not members:
        raise ValueError("predict_ensemble: give at least one member (estimators is empty)")
    kinds = [_output_kind(e) for e in members]
    for i, kind in enumerate(kinds[1:], 1):
        if kind[1] != kinds[0][1]:
            raise ValueError(
                f"predict_ensemble: member {i} ({kind[0]}) predicts {kind[1]}, member 0 "
                f"({kinds[0][0]}) {kinds[0][1]}; combine members of one kind"
            )
    return combine_forecasts([np.asarray(e.predict(x)) for e in members], combine)


def _output_kind(estimator: Any) -> tuple[str, str]:
    """An estimator's class and compiled loss, and what it predicts."""
    compiled = getattr(estimator, "compiled", None) or {}
    name = f"{type(estimator).__name__}, loss {compiled.get('loss_name', '?')}"
    classes = compiled.get("loss") in ("categorical", "sparse")
    return name, "class probabilities" if classes else "values"
