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
    WindowSpec,
    left_pad,
    make_windows,
    read_series,
    require_positive,
    training_windows,
    unscale,
)
from transduce.engine.loop import Loop
from transduce.engine.run import run
from transduce.forecasting.metrics import baseline_scores, owa, score
from transduce.nn.models import build_value_model
from transduce.search import rollout
from transduce.tasks.series import SeriesTask

log = logging.getLogger("transduce.forecast")


def window_spec(s: SeriesConfig) -> WindowSpec:
    return WindowSpec(s.lookback, s.horizon, s.period, s.scaling, s.calendar, s.seasonal)


def series_model(cfg: Config) -> torch.nn.Module:
    """One output value per step; the decoder also sees known features of the target steps."""
    spec = window_spec(cfg.series)
    return build_value_model(cfg.model, spec.features, 1, spec.exog_features)


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
        return {k: v for k, v in metrics.items() if np.isfinite(v)}  # metrics.jsonl: plain JSON

    return scorer


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
    task = SeriesTask(
        cfg, model, ArrayData.from_windows(train_w), ArrayData.from_windows(valid_w),
        loss=s.loss, scorer=holdout_scorer(data.values, valid_w, cfg.series, holdout),
    )  # fmt: skip
    trainer = Loop(cfg, task, run_dir, rank=rank, world=world)
    summary = (
        f"{len(data)} series: {len(train_w.src)} training windows, {len(valid_w.src)} "
        f"validation; {cfg.model.preset} {cfg.model.cell}"
    )
    return run(trainer, resume, summary=summary)


class Forecaster:
    """A trained forecasting run: ``forecast(series) -> [N, horizon]`` in the data's units."""

    def __init__(self, cfg: Config, model: torch.nn.Module, device: str = "cpu"):
        if cfg.series is None:
            raise ValueError("this run is not a forecasting run (its config has no series)")
        self.cfg, self.spec = cfg, window_spec(cfg.series)
        self.model, self.device = model.to(device).eval(), device

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
        return cls(cfg, model, device)

    @torch.no_grad()
    def forecast(self, series: list[np.ndarray], batch_size: int = 512) -> np.ndarray:
        """Forecast ``horizon`` values after the end of each series; ``[N, horizon]``."""
        spec = self.spec
        hist = np.stack([left_pad(x, spec.lookback) for x in series])  # [N, L]
        w = make_windows(hist, np.zeros(len(series), dtype=np.int64), spec, None)
        out = []
        for i in range(0, len(series), batch_size):
            src = torch.from_numpy(w.src[i : i + batch_size]).to(self.device)  # [b, L, F]
            first = torch.from_numpy(w.start[i : i + batch_size])[:, None]  # [b, 1, 1]
            exog = torch.from_numpy(w.exog[i : i + batch_size])  # [b, H, C]
            tgt_in = torch.cat([first.expand(-1, spec.horizon, -1), exog], -1).to(self.device)
            mask = torch.ones(src.shape[:2], dtype=torch.bool, device=self.device)
            pred, _ = rollout(self.model, src, mask, tgt_in, 1)  # [b, H, 1]
            out.append(pred[:, :, 0].float().cpu().numpy())
        return unscale(np.concatenate(out).astype(np.float64), w.level, spec)


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
    """``id,F1..FH`` (the M4 submission layout), to ``path`` like ``translate --output``."""
    header = "id," + ",".join(f"F{i + 1}" for i in range(forecasts.shape[1]))
    rows = [
        f"{name}," + ",".join(f"{v:.6g}" for v in row)
        for name, row in zip(ids, forecasts, strict=True)
    ]
    from transduce.atomic import atomic_output

    with atomic_output(path) as f:  # a FIFO is written through, a file replaced when done
        f.write("\n".join([header, *rows]) + "\n")
