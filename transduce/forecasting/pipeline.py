"""Forecasting runs: series file -> rolling windows -> trained model directory -> forecasts.

``train_series`` is what ``transduce train`` runs for a config with a ``series`` section;
:class:`Forecaster` loads the run directory and forecasts ``horizon`` steps after the end
of each series (``transduce forecast``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from transduce import checkpoint as ckpt
from transduce.config import (
    Config,
    ConfigError,
    SeriesConfig,
    data_path,
    load_run_config,
)
from transduce.data.series import (
    ArrayData,
    SeriesSet,
    WindowArrays,
    WindowSpec,
    left_pad,
    make_windows,
    read_series,
    require_positive,
    training_windows,
    unscale,
)
from transduce.engine.run import run
from transduce.forecasting import conformal
from transduce.forecasting.metrics import baseline_scores, owa, score
from transduce.forecasting.trainer import ValueTrainer
from transduce.nn.heads import quantile_levels
from transduce.nn.models import build_value_model
from transduce.search import rollout

log = logging.getLogger("transduce.forecast")


def window_spec(s: SeriesConfig) -> WindowSpec:
    return WindowSpec(s.lookback, s.horizon, s.period, s.scaling, s.calendar, s.seasonal)


def series_model(cfg: Config) -> torch.nn.Module:
    """One output value per step (the median, then interval quantiles with ``levels``); the
    decoder also sees known features of the target steps."""
    spec = window_spec(cfg.series)
    levels = len(cfg.series.levels)
    return build_value_model(cfg.model, spec.features, 1, spec.exog_features, None, levels)


def holdout_scorer(series: list[np.ndarray], valid, s: SeriesConfig, holdout: int):
    """sMAPE, MASE and OWA (against Naive2) of the validation roll-out in the data's units:
    the forecasts of each series' last ``holdout`` values from what precedes them, as the
    M4 benchmark scores a test set. None where the held-out windows are not that (a
    holdout of 0, or other than the horizon)."""
    if holdout != s.horizon or valid.target is None:
        return None
    spec = window_spec(s)
    kept = [x for x in series if len(x) >= s.lookback + holdout]
    history, truth = [x[:-holdout] for x in kept], [x[-holdout:] for x in kept]
    if len(kept) != len(valid.level):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        naive2 = baseline_scores(history, truth, s.period)["Naive2"]

    def scorer(pred: np.ndarray) -> dict[str, float]:
        forecasts = unscale(pred[:, :, 0].astype(np.float64), valid.level, spec)
        with np.errstate(divide="ignore", invalid="ignore"):  # a flat history: MASE's scale 0
            ours = score(history, truth, list(forecasts), s.period)
            metrics = {"smape": ours["smape"], "mase": ours["mase"], "owa": owa(ours, naive2)}
        if s.levels:
            quantiles = unscale_all(pred.astype(np.float64), valid.level, spec)
            metrics.update(quantile_scores(history, truth, quantiles, s))
        return {k: v for k, v in metrics.items() if np.isfinite(v)}  # metrics.jsonl: plain JSON

    return scorer


def unscale_all(pred: np.ndarray, level: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``pred [N, H, D]`` scaled -> the data's units, every column (the scalings are
    monotone, so quantiles stay quantiles)."""
    return np.stack([unscale(pred[:, :, d], level, spec) for d in range(pred.shape[2])], -1)


def quantile_scores(history, truth, quantiles: np.ndarray, s: SeriesConfig) -> dict[str, float]:
    """MSIS / ACD / coverage of each learned (uncalibrated) interval and the scaled pinball
    loss of every quantile (each series' pinball over its MASE scale, averaged)."""
    from transduce.forecasting.intervals import interval_scores, pinball, seasonal_scale

    out, probs = {}, quantile_levels(s.levels)
    for k, level in enumerate(sorted(s.levels)):
        lo, hi = quantiles[:, :, 1 + 2 * k], quantiles[:, :, 2 + 2 * k]
        got = interval_scores(history, truth, list(lo), list(hi), s.period, level)
        out.update({f"{name}_{level:g}": value for name, value in got.items()})
    with np.errstate(divide="ignore", invalid="ignore"):
        per = [np.mean([pinball(y, quantiles[i, :, j], q) for j, q in enumerate(probs)])
               / seasonal_scale(x, s.period) for i, (x, y) in enumerate(zip(history, truth,
                                                                            strict=True))]  # fmt: skip
    per = [v for v in per if np.isfinite(v)]
    out["pinball"] = float(np.mean(per)) if per else float("nan")
    return out


def train_series(cfg: Config, run_dir: Path, resume: bool = False, rank: int = 0, world: int = 1):
    """Train the forecasting run ``cfg`` into ``run_dir`` (called by ``transduce.train.train``
    after it resolved the config, seeded and set threads); under torchrun each rank trains
    on its share of the windows' batches and validates all of them."""
    s = cfg.series
    if not s.train:
        raise ValueError("series.train: give the training series file")
    data = read_series(data_path(s.train), s.format, s.on_bad_line)
    require_positive(data, s.scaling)
    train_w, valid_w = training_windows(
        data.values, window_spec(s), s.stride, s.holdout if s.holdout is not None else s.horizon
    )
    model = series_model(cfg)
    if world > 1:
        torch.manual_seed(cfg.train.seed + 1009 * rank)  # each rank its own dropout masks
    holdout = s.holdout if s.holdout is not None else s.horizon
    trainer = ValueTrainer(
        cfg, model, ArrayData.from_windows(train_w), ArrayData.from_windows(valid_w), run_dir,
        loss=s.loss, scorer=holdout_scorer(data.values, valid_w, cfg.series, holdout),
        rank=rank, world=world, quantiles=quantile_levels(s.levels) if s.levels else None,
    )  # fmt: skip
    summary = (
        f"{len(data)} series: {len(train_w.src)} training windows, {len(valid_w.src)} "
        f"validation; {cfg.model.preset} {cfg.model.cell}"
    )
    result = run(trainer, resume, summary=summary)
    if rank == 0 and holdout and (Path(run_dir) / "model.safetensors").exists():
        write_calibration(run_dir, valid_w)
    return result


def write_calibration(run_dir: str | os.PathLike, valid: WindowArrays) -> Path:
    """Conformal calibration of the best weights on the validation windows (per horizon
    step; :mod:`transduce.forecasting.conformal`), written into the run."""
    forecaster = Forecaster.load(run_dir)
    pred = forecaster.rollout_windows(valid)  # [N, H, D] scaled
    calibration = conformal.calibrate(pred, valid.target[:, :, 0].astype(np.float64),
                                      forecaster.cfg.series.levels)  # fmt: skip
    return conformal.save(run_dir, calibration)


class Forecaster:
    """A trained forecasting run: ``forecast(series) -> [N, horizon]`` in the data's units."""

    def __init__(
        self, cfg: Config, model: torch.nn.Module, device: str = "cpu", calibration=None
    ):
        if cfg.series is None:
            raise ValueError("this run is not a forecasting run (its config has no series)")
        self.cfg, self.spec = cfg, window_spec(cfg.series)
        self.model, self.device = model.to(device).eval(), device
        self.calibration = calibration  # conformal.json of the run, or None

    @classmethod
    def load(cls, run_dir: str | os.PathLike, checkpoint: str = "best", device: str = "cpu"):
        run_dir = Path(run_dir)
        cfg = load_run_config(run_dir)
        if cfg.series is None:
            raise ConfigError(
                f"{run_dir}: a text run (no series section); forecast needs a series run"
            )
        model = series_model(cfg)
        weights = run_dir / "model.safetensors"
        if checkpoint != "best":
            weights = run_dir / checkpoint / "model.safetensors"
        ckpt.load_weights(model, weights)
        return cls(cfg, model, device, conformal.load(run_dir))

    @torch.no_grad()
    def rollout_windows(self, w: WindowArrays, batch_size: int = 512) -> np.ndarray:
        """The model's outputs on windows ``w``, scaled: ``[N, H, D]`` (D = 1, or the
        median then ``(lo, hi)`` per learned level)."""
        out, horizon = [], w.exog.shape[1]
        for i in range(0, len(w.src), batch_size):
            src = torch.from_numpy(w.src[i : i + batch_size]).to(self.device)  # [b, L, F]
            first = torch.from_numpy(w.start[i : i + batch_size])[:, None]  # [b, 1, 1]
            exog = torch.from_numpy(w.exog[i : i + batch_size])  # [b, H, C]
            tgt_in = torch.cat([first.expand(-1, horizon, -1), exog], -1).to(self.device)
            mask = torch.ones(src.shape[:2], dtype=torch.bool, device=self.device)
            pred, _ = rollout(self.model, src, mask, tgt_in, 1)  # [b, H, D]
            out.append(pred.float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def windows(self, series: list[np.ndarray]) -> WindowArrays:
        """The forecast windows: the last ``lookback`` values of each series."""
        hist = np.stack([left_pad(x, self.spec.lookback) for x in series])  # [N, L]
        return make_windows(hist, np.zeros(len(series), dtype=np.int64), self.spec, None)

    def forecast(self, series: list[np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Forecast ``horizon`` values after the end of each series; ``[N, horizon]``."""
        w = self.windows(series)
        return unscale(self.rollout_windows(w, batch_size)[:, :, 0], w.level, self.spec)

    def forecast_intervals(
        self, series: list[np.ndarray], levels: list[float], batch_size: int = 512
    ) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """The point forecast ``[N, H]`` and, per level (``"80"``), the conformal interval
        ``(lo, hi)``, each ``[N, H]``, in the data's units."""
        if levels and self.calibration is None:
            raise ConfigError("this run has no conformal calibration (conformal.json; runs "
                              "trained before intervals existed): retrain it")  # fmt: skip
        w = self.windows(series)
        pred = self.rollout_windows(w, batch_size)
        point = unscale(pred[:, :, 0], w.level, self.spec)
        bands = {}
        for level in levels:
            lo, hi = conformal.bands(pred, self.calibration, level)
            bands[conformal.label(level)] = (unscale(lo, w.level, self.spec),
                                             unscale(hi, w.level, self.spec))  # fmt: skip
        return point, bands


def evaluate_forecasts(
    history: SeriesSet, actuals: SeriesSet, forecasts: np.ndarray, period: int
) -> dict[str, float | dict]:
    """sMAPE, MASE and OWA of ``forecasts`` and of the Naive/sNaive/Naive2 baselines."""
    if history.ids != actuals.ids:
        raise ValueError("the actuals' series ids differ from the history's (same order needed)")
    h = forecasts.shape[1]
    truth = [a[:h] for a in actuals.values]
    if any(len(a) < h for a in truth):
        raise ValueError(f"every actual series needs {h} values")
    base = baseline_scores(history.values, truth, period)
    ours = score(history.values, truth, list(forecasts), period)
    ours["owa"] = owa(ours, base["Naive2"])
    return {**ours, "baselines": base}


def write_forecasts(path: str | os.PathLike, ids: list[str], forecasts: np.ndarray) -> None:
    """``id,F1..FH`` (the M4 submission layout), written through ``path`` as it is (a
    symlink, a FIFO, /proc/self/fd/1), like ``translate --output``."""
    from transduce.data.corpus import DataError

    header = "id," + ",".join(f"F{i + 1}" for i in range(forecasts.shape[1]))
    rows = [
        f"{name}," + ",".join(f"{v:.6g}" for v in row)
        for name, row in zip(ids, forecasts, strict=True)
    ]
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join([header, *rows]) + "\n")
    except OSError as err:
        raise DataError(path, None, f"cannot write: {err.strerror or err}") from None
