"""Forecasting runs: series file -> rolling windows -> trained model directory -> forecasts.

``train_series`` is what ``transduce train`` runs for a config with a ``series`` section;
:class:`Forecaster` loads the run directory and forecasts ``horizon`` steps after the end
of each series (``transduce forecast``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transduce.config import (
    Config,
    ConfigError,
    SeriesConfig,
    data_path,
    load_run_config,
)
from transduce.data.series import SeriesSet, require_positive
from transduce.data.windows import (
    ArrayData,
    WindowArrays,
    WindowSpec,
    training_windows,
    unscale,
)
from transduce.device import resolve_device
from transduce.engine import checkpoint as ckpt
from transduce.engine.loop import Loop
from transduce.engine.run import run, start_run
from transduce.engine.rundir import undo_failed_start
from transduce.forecasting import conformal, normalized, phase
from transduce.forecasting.frames import load_series
from transduce.forecasting.metrics import baseline_scores, owa, score

# torch-free, so in output.py (the runtime's forecast uses them); still importable here
from transduce.forecasting.output import evaluate_forecasts, write_forecasts  # noqa: F401
from transduce.forecasting.windowed import WindowForecaster
from transduce.inference.search import rollout
from transduce.nn.heads import quantile_levels
from transduce.nn.models import build_value_model
from transduce.tasks.series import SeriesTask

log = logging.getLogger("transduce.forecast")
# at most this many training series calibrate the stored normalized intervals (13 forecasts
# of them at the end of training; 2,000 bound a 95% quantile's rank error to ~0.5 %)
NORMALIZED_SAMPLE = 2000


def window_spec(s: SeriesConfig) -> WindowSpec:
    bad = [lv for lv in s.levels if not 0 < lv < 100]
    if bad or len(set(s.levels)) != len(s.levels):
        raise ConfigError(
            f"series.levels: {list(s.levels)}: each a percentage strictly "
            "between 0 and 100, none twice"
        )
    return WindowSpec(
        s.lookback,
        s.horizon,
        s.period,
        s.scaling,
        s.calendar,
        s.seasonal,
        len(s.covariates),
        len(s.past_covariates),
    )


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
    per = []
    for i, (x, y) in enumerate(zip(history, truth, strict=True)):
        with np.errstate(divide="ignore", invalid="ignore"):  # a flat history: scale 0
            loss = [pinball(y, quantiles[i, :, j], q) for j, q in enumerate(probs)]
            per.append(np.mean(loss) / seasonal_scale(x, s.period))
    per = [v for v in per if np.isfinite(v)]
    out["pinball"] = float(np.mean(per)) if per else float("nan")
    return out


def train_series(cfg: Config, run_dir: Path, resume: bool = False, rank: int = 0, world: int = 1):
    """Train the forecasting run ``cfg`` into ``run_dir`` (called by ``transduce.tasks.train.train``
    after it resolved the config, seeded and set threads); under torchrun each rank trains
    on its share of the windows' batches and validates all of them."""
    s = cfg.series
    if not s.train:
        raise ValueError("series.train: give the training series file")
    if s.holdout and s.holdout < s.horizon:  # its validation window would run past the end
        raise ValueError(
            f"series.holdout: {s.holdout}: 0 (no validation) or at least series.horizon "
            f"({s.horizon}): the held-out values are forecast a whole horizon at a time"
        )
    data = load_series(data_path(s.train), s.format, s.on_bad_line)
    require_positive(data, s.scaling)
    covariates = data.covariates(s.covariates + s.past_covariates)
    data.note_unused(s.covariates + s.past_covariates, log)
    train_w, valid_w = training_windows(
        data.values,
        window_spec(s),
        s.stride,
        s.holdout if s.holdout is not None else s.horizon,
        covariates,
    )
    model = series_model(cfg)
    if world > 1:
        torch.manual_seed(cfg.train.seed + 1009 * rank)  # each rank its own dropout masks
    holdout = s.holdout if s.holdout is not None else s.horizon
    task = SeriesTask(
        cfg,
        model,
        ArrayData.from_windows(train_w),
        ArrayData.from_windows(valid_w),
        loss=s.loss,
        scorer=holdout_scorer(data.values, valid_w, cfg.series, holdout),
        quantiles=quantile_levels(s.levels) if s.levels else None,
    )
    trainer = Loop(cfg, task, run_dir, rank=rank, world=world)
    summary = (
        f"{len(data)} series: {len(train_w.src)} training windows, {len(valid_w.src)} "
        f"validation; {cfg.model.preset} {cfg.model.cell}"
    )
    result = run(trainer, resume, summary=summary)
    if rank == 0 and (Path(run_dir) / "model.safetensors").exists():
        # each series' last timestamp: where the phase of a later history counts from
        phase.save_ends(run_dir, data.ids, data.timestamps)
    if rank == 0 and holdout and (Path(run_dir) / "model.safetensors").exists():
        # normalized bands need backtests at past origins: not with covariates
        write_calibration(run_dir, valid_w, None if covariates else data.values)
    return result


def write_calibration(
    run_dir: str | os.PathLike, valid: WindowArrays, series: list[np.ndarray] | None = None
) -> Path:
    """Conformal calibration of the best weights on the validation windows (per horizon
    step; :mod:`transduce.forecasting.conformal`), written into the run; with ``series``
    (the training series) and interval levels, also their normalized calibration
    (:mod:`transduce.forecasting.normalized`: ``windows + 1`` forecasts of the series)."""
    forecaster = Forecaster.load(run_dir)
    pred = forecaster.rollout_windows(valid)  # [N, H, D] scaled
    levels = forecaster.cfg.series.levels
    calibration = conformal.calibrate(pred, valid.target[:, :, 0].astype(np.float64), levels)
    if series is not None and levels:
        if len(series) > NORMALIZED_SAMPLE:  # bounded cost: a seeded sample calibrates
            pick = np.random.default_rng(0).choice(len(series), NORMALIZED_SAMPLE, replace=False)
            series = [series[i] for i in sorted(pick)]
        try:
            horizon = forecaster.spec.horizon
            norm = normalized.calibrate(forecaster.forecast, series, horizon, levels)
            normalized.save(run_dir, norm)
        except ValueError as err:  # too few series for a level: the run keeps conformal only
            log.warning("no normalized intervals: %s", err)
    return conformal.save(run_dir, calibration)


# Forecaster.fit without a run folder trains in TMP/transduce-fit-PID@SPACE-RANDOM
FIT_PREFIX = "transduce-fit-"


class Forecaster(WindowForecaster):
    """A trained forecasting run: ``forecast(series) -> [N, horizon]`` in the data's units."""

    def __init__(self, cfg: Config, model: torch.nn.Module, device: str = "cpu", calibration=None):
        if cfg.series is None:
            raise ValueError("this run is not a forecasting run (its config has no series)")
        self.cfg, self.spec = cfg, window_spec(cfg.series)
        self.model, self.device = model.to(device).eval(), device
        self.calibration = calibration  # conformal.json of the run, or None
        self.history: SeriesSet | None = None  # the table fit() trained on

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
        dev = resolve_device(device)  # auto, an unknown name or no CUDA: one line
        out = cls(cfg, model, dev, conformal.load(run_dir))
        out.normalized = normalized.load(run_dir)
        out.ends = phase.load_ends(run_dir)  # where the phase input counts from
        return out

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

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(self.cfg.series.covariates) + tuple(self.cfg.series.past_covariates)

    # ------------------------------------------------------------ DataFrames (long format)

    @classmethod
    def fit(
        cls,
        df,
        config: str | os.PathLike | Config,
        run_dir: str | os.PathLike | None = None,
        overrides: list[str] = (),
    ) -> Forecaster:
        """Train ``config`` (a YAML path or :class:`Config` with a ``series`` section) on
        the long DataFrame ``df`` (``unique_id, ds, y[, covariates]``) into ``run_dir``, a
        new or empty folder (refused otherwise, before anything is written); the table is
        written into the run as ``series.csv`` (so the run's config names its data), and
        is the history :meth:`predict` continues. Without ``run_dir`` the run is a
        temporary folder, removed once the model is loaded (give ``run_dir`` to keep,
        export or resume it); one that a ``kill -9`` left is removed by the next such fit."""
        import re
        import tempfile

        from transduce.atomic import OWNER, owner, remove_dead

        if isinstance(overrides, (str, bytes)):  # its characters were taken for overrides
            raise TypeError("overrides: a list of KEY=VALUE strings, e.g. ['train.max_steps=100']")

        if run_dir is None:
            top = tempfile.gettempdir()
            remove_dead(top, re.compile(rf"{FIT_PREFIX}{OWNER}-\w+"), folders_only=True, mine=True)
            with tempfile.TemporaryDirectory(prefix=f"{FIT_PREFIX}{owner()}-") as tmp:
                return cls.fit(df, config, Path(tmp) / "run", overrides)
        run_dir = Path(run_dir)
        if run_dir.is_symlink():  # a run never goes through a link (a dangling one: mkdir)
            raise FileExistsError(
                f"{run_dir}: a symbolic link (to {os.readlink(run_dir)}): give a folder of its own"
            )
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise FileExistsError(
                f"{run_dir}: Forecaster.fit trains a new run: give a new or empty folder"
            )
        return cls._fit(df, config, run_dir, overrides)

    @classmethod
    def _fit(cls, df, config, run_dir: Path, overrides) -> Forecaster:
        import dataclasses

        from transduce.config import load_config
        from transduce.forecasting.frames import frame_to_series, write_table

        history = frame_to_series(df)  # refuse a bad table before training
        cfg = config if isinstance(config, Config) else load_config(config, list(overrides))
        if cfg.series is None:
            raise ConfigError("Forecaster.fit: the config has no series section")
        created = not run_dir.exists()
        series = dataclasses.replace(
            cfg.series, train=str(run_dir / "series.csv"), format="auto", test=""
        )

        def body(cfg: Config, run_dir: Path, resume: bool, ctx) -> Any:
            write_table(df, run_dir / "series.csv")  # under the run's lock
            return train_series(cfg, run_dir, resume)

        try:
            start_run(dataclasses.replace(cfg, series=series), run_dir, False, [], body)
        except FileExistsError:
            raise  # another process trains there: its files are not this fit's to undo
        except BaseException:  # refused before a checkpoint: no run left to block a retry
            undo_failed_start(run_dir, created=True)
            if not created:
                run_dir.mkdir(exist_ok=True)  # the empty folder given stays
            raise
        out = cls.load(run_dir)
        out.history = history
        return out

    def predict(self, h: int | None = None, level: list[float] = (), df=None, futr_df=None):
        """Forecast ``h`` (<= the trained horizon) steps after each series of ``df`` (by
        default the table :meth:`fit` saw) as a long DataFrame: ``unique_id, ds, y`` and
        ``lo-L, hi-L`` per level; ``futr_df`` (``unique_id, ds`` and the future-known
        covariates) gives those covariates over the forecast steps."""
        from transduce.forecasting.frames import forecasts_frame, frame_to_series, future_rows

        history = frame_to_series(df) if df is not None else self.history
        if history is None:
            raise ConfigError("predict: give df (this Forecaster was loaded, not fitted)")
        require_positive(history, self.spec.scaling)  # log ratios: none for a value <= 0
        h = self.spec.horizon if h is None else h
        if (
            isinstance(h, bool)
            or not isinstance(h, (int, np.integer))
            or not 0 < h <= self.spec.horizon
        ):
            raise ConfigError(f"predict: h={h!r}, this run forecasts 1..{self.spec.horizon}")
        if isinstance(level, (int, float, str)) or not all(
            isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in level
        ):
            raise ConfigError(f"predict: level={level!r}: give a list of levels, e.g. [80, 95]")
        names = self.covariate_names
        covariates = history.covariates(names) if names else None
        future = None
        if futr_df is not None and not self.cfg.series.covariates:
            log.warning("predict: futr_df is not used (this model has no future covariates)")
        if self.cfg.series.covariates:
            if futr_df is None:
                raise ConfigError(
                    f"predict: futr_df with {list(self.cfg.series.covariates)} "
                    "over the forecast steps is needed"
                )
            fut = frame_to_series(futr_df, "futr_df", need_y=False)
            known = tuple(self.cfg.series.covariates)
            future = future_rows(history, fut, known, self.spec.horizon, "futr_df", needed=h)
        origin = self.origins(history.ids, history.timestamps)  # later than training's end?
        point, bands = self.forecast_intervals(
            history.values, list(level), 512, covariates, future, origin=origin
        )
        cut = {k: (lo[:, :h], hi[:, :h]) for k, (lo, hi) in bands.items()}
        return forecasts_frame(history, point[:, :h], cut)
