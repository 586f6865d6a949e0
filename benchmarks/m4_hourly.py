"""M4 Hourly: train the configs/m4_hourly.yaml recipe, forecast 48 steps, score against the
test file with the M4 metrics, and print one JSON line (the seq2seq scores, the Naive2 /
sNaive / Naive figures computed in the same run, and the training time).

    flock /work/cpu.lock python benchmarks/m4_hourly.py --threads 2 [--set train.max_seconds=600]

Data: ``$TRANSDUCE_DATA/m4/Hourly-{train,test}.csv`` (default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from transduce.config import data_path, load_config
from transduce.data.series import read_series
from transduce.forecasting.pipeline import Forecaster, evaluate_forecasts
from transduce.train import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "m4_hourly.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="run directory (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [*args.set, f"train.threads={args.threads}"])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or Path(tmp) / "run")
        start = time.perf_counter()
        result = train(cfg, out)
        train_s = time.perf_counter() - start
        history = read_series(data_path(cfg.series.train), cfg.series.format)
        actuals = read_series(data_path(cfg.series.test), cfg.series.format)
        start = time.perf_counter()
        forecasts = Forecaster.load(out).forecast(history.values)
        forecast_s = time.perf_counter() - start
    scores = evaluate_forecasts(history, actuals, forecasts, cfg.series.period)
    r = lambda d: {k: round(v, 3) for k, v in d.items()}  # noqa: E731
    print(json.dumps({
        "benchmark": "m4_hourly", "series": len(history), "horizon": cfg.series.horizon,
        "preset": cfg.model.preset, "cell": cfg.model.cell,
        "smape": round(scores["smape"], 3), "mase": round(scores["mase"], 3),
        "owa": round(scores["owa"], 3),
        **{name: r(v) for name, v in scores["baselines"].items()},
        "train_seconds": round(train_s, 1), "forecast_seconds": round(forecast_s, 2),
        "steps": result.steps, "best_step": result.best.get("step"),
        "threads": args.threads, "finite": bool(np.isfinite(forecasts).all()),
        "overrides": args.set,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
