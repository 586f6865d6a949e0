r"""M4 Hourly: train the configs/m4_hourly.yaml recipe, forecast 48 steps, score against the
test file with the M4 metrics, and print one JSON line (the seq2seq scores, the Naive2 /
sNaive / Naive figures computed in the same run, and the training time).

    flock /work/cpu.lock python benchmarks/m4_hourly.py --threads 2 [--set train.max_seconds=600]

An ensemble trains one member per ``--member`` (each a ``;``-separated list of overrides on
top of ``--set``), scores every member and their median (``--combine mean`` for the mean):

    python benchmarks/m4_hourly.py --threads 2 --set train.max_seconds=900 \
        --member "train.seed=1" --member "train.seed=2;series.lookback=336" ...

Intervals: ``--level 95 80`` (default 95) forecasts the recipe's conformal intervals and
scores them with the M4 interval metrics (MSIS, ACD, coverage) beside the Naive benchmark's
random-walk interval (official Hourly MSIS 71.245 / ACD 0.011, reproduced here).
``--interval-method normalized`` scales each series' band by the model's errors on its
last ``--scale-windows`` horizons, per step over ``--scale-steps`` neighbouring steps
(:mod:`transduce.forecasting.normalized`);
``--score-only --out DIR`` scores members trained before into DIR without training again.
``--backtest K`` also times ``transduce backtest`` with K windows (one model, no refit).
``--weekly-covariates`` trains on M4 Hourly as a long table whose future-known covariates
are the phase in the week (sin, cos of the hour mod 168, counted from the series end, as
the built-in hour-of-day phase is): a calendar feature the recipe does not have.

Data: ``$TRANSDUCE_DATA/m4/Hourly-{train,test}.csv`` (default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_cli import int_at_least, run
from bench_cli import parser as make_parser

from transduce.config import data_path, load_config
from transduce.data.series import read_series
from transduce.engine.averaging import write_average
from transduce.forecasting.backtest import backtest
from transduce.forecasting.ensemble import ForecastEnsemble, combine_forecasts
from transduce.forecasting.intervals import interval_scores, naive_interval
from transduce.forecasting.normalized import normalized_intervals
from transduce.forecasting.pipeline import Forecaster, evaluate_forecasts
from transduce.tasks.train import train

ROOT = Path(__file__).resolve().parents[1]


def _scores(history, actuals, forecasts, period: int) -> dict:
    s = evaluate_forecasts(history, actuals, forecasts, period)
    return {k: round(s[k], 3) for k in ("smape", "mase", "owa")} | {"baselines": s["baselines"]}


def _interval_scores(history, actuals, bands: dict, period: int) -> dict:
    """MSIS / ACD / coverage per level, and the Naive benchmark's 95% figures."""
    h = len(next(iter(bands.values()))[0][0]) if bands else 48
    truth = [a[:h] for a in actuals.values]
    out = {}
    for key, (lo, hi) in bands.items():
        got = interval_scores(history.values, truth, list(lo), list(hi), period, float(key))
        out[key] = {k: round(v, 3) for k, v in got.items()}
    naive = [naive_interval(x, h) for x in history.values]
    got = interval_scores(
        history.values, truth, [b[0] for b in naive], [b[1] for b in naive], period, 95.0
    )
    out["naive_95"] = {k: round(v, 3) for k, v in got.items()}
    return out


WEEK = 168


def _week(t: np.ndarray) -> np.ndarray:
    """``[len(t), 2]``: sin, cos of the phase in the week of steps ``t`` (0 = test start)."""
    angle = 2 * np.pi * (t % WEEK) / WEEK
    return np.stack([np.sin(angle), np.cos(angle)], -1)


def weekly_table(history, path: Path) -> list[str]:
    """Write the training series as a long table with the week-phase covariates; returns
    the overrides that train on it."""
    import pandas as pd

    frames = []
    for name, x in zip(history.ids, history.values, strict=True):
        week = _week(np.arange(-len(x), 0))
        frames.append(
            pd.DataFrame(
                {
                    "unique_id": name,
                    "ds": np.arange(-len(x), 0),
                    "y": x,
                    "week_sin": week[:, 0],
                    "week_cos": week[:, 1],
                }
            )
        )
    pd.concat(frames).to_csv(path, index=False)
    return [f"series.train={path}", "series.format=auto", "series.covariates=[week_sin,week_cos]"]


def weekly_inputs(history, horizon: int) -> tuple:
    """``forecast_intervals``' extra arguments: the covariates' history and future."""
    past = [_week(np.arange(-len(x), 0)) for x in history.values]
    return 512, past, [_week(np.arange(horizon))] * len(history)


def _level(text: str) -> float:
    """``--level``'s type: a coverage percentage strictly between 0 and 100."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, got {text!r}") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"expected a percentage in (0, 100), got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = make_parser(__doc__)
    parser.add_argument("--config", default=str(ROOT / "configs" / "m4_hourly.yaml"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="K=V;K=V",
        help="one ensemble member's extra overrides (repeat per member)",
    )
    parser.add_argument("--combine", choices=["median", "mean"], default="median")
    parser.add_argument(
        "--average",
        type=int_at_least(0),
        default=0,
        metavar="N",
        help="forecast with the mean weights of each member's last N validation checkpoints",
    )
    parser.add_argument(
        "--level",
        type=_level,
        nargs="*",
        default=[95.0],
        metavar="PCT",
        help="interval levels to score (default 95; none: point only)",
    )
    parser.add_argument(
        "--backtest",
        type=int_at_least(0),
        default=0,
        metavar="K",
        help="also time a K-window backtest of the first model",
    )
    parser.add_argument(
        "--weekly-covariates",
        action="store_true",
        help="add the week phase as future-known covariates",
    )
    parser.add_argument(
        "--interval-method",
        choices=["conformal", "normalized"],
        default="conformal",
        help="the runs' calibration, or each series' band scaled by its backtest errors",
    )
    parser.add_argument("--scale-windows", type=int_at_least(1), default=12, metavar="K")
    parser.add_argument(
        "--scale-steps", type=int_at_least(0), default=3, metavar="W", help="0: per series"
    )
    parser.add_argument("--threads", type=int_at_least(1), default=1)
    parser.add_argument("--out", help="folder for the run directories (default: temporary)")
    parser.add_argument(
        "--score-only",
        action="store_true",
        help="score the runs already in --out (member0.. or run) without training",
    )
    return parser


def _cpu_seconds() -> float:
    """CPU seconds of this process, all threads (the budget is CPU time, not wall)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _train_members(args, members: list[list[str]], base: list[str], root: Path):
    """Train each member; returns (run directories, seconds of training, steps per run)."""
    runs, train_s, steps = [], 0.0, []
    for i, extra in enumerate(members):
        cfg = load_config(args.config, [*base, *extra])
        out = root / ("run" if len(members) == 1 else f"member{i}")
        if args.score_only:  # trained before: nothing to time
            if not (out / "config.yaml").is_file():
                sys.exit(
                    f"m4_hourly: --score-only: {out} is not a trained run (give as many "
                    f"--member flags as {root} holds member* runs, or one run in {root}/run)"
                )
            runs.append(out)
            steps.append({"steps": None, "best_step": None, "cpu_s": 0.0})
            continue
        start, cpu = time.perf_counter(), _cpu_seconds()
        result = train(cfg, out)
        train_s += time.perf_counter() - start
        steps_cpu = round(_cpu_seconds() - cpu, 1)
        if result.interrupted:  # SIGINT/SIGTERM: stop here, not with the next member
            sys.exit(f"m4_hourly: interrupted in {out} at step {result.steps}")
        steps.append(
            {"steps": result.steps, "best_step": result.best.get("step"), "cpu_s": steps_cpu}
        )
        if args.average:
            write_average(out, args.average)
        runs.append(out)
    return runs, train_s, steps


def _forecast(args, runs: list[Path], history, extra_in: tuple, horizon: int):
    """Members' point forecasts, the (combined) bands, seconds, and the backtest timing."""
    start = time.perf_counter()
    weights = "averaged" if args.average else "best"
    models = [Forecaster.load(out, weights) for out in runs]
    outs = [m.forecast_intervals(history.values, args.level, *extra_in) for m in models]
    forecast_s = time.perf_counter() - start
    whole = ForecastEnsemble(models, args.combine) if len(models) > 1 else models[0]
    if args.interval_method == "normalized" and args.level:
        windows, steps = args.scale_windows, args.scale_steps
        _, bands = normalized_intervals(
            whole.forecast, history.values, horizon, args.level, windows, steps
        )
    elif len(models) > 1:
        _, bands = whole.forecast_intervals(history.values, args.level)
    else:
        bands = outs[0][1]
    timing = {}
    if args.backtest and not extra_in:
        start = time.perf_counter()
        bt = backtest(models[0], history, args.backtest, horizon, args.level)
        timing = {
            "backtest_seconds": round(time.perf_counter() - start, 1),
            "backtest_owa": round(bt["overall"]["owa"], 3),
        }
    return [o[0] for o in outs], bands, forecast_s, timing


def main() -> None:
    args = _parser().parse_args()
    if args.score_only and not args.out:
        sys.exit("m4_hourly: --score-only scores the runs in --out: give --out")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    members = [[kv for kv in m.split(";") if kv.strip()] for m in args.member] or [[]]
    base = [*args.set, f"train.threads={args.threads}"]
    if args.average:  # keep enough checkpoints to average (a larger --set value still wins)
        base.insert(0, f"train.keep_checkpoints={args.average}")
    cfg = load_config(args.config, base)
    history = read_series(data_path(cfg.series.train), cfg.series.format)
    actuals = read_series(data_path(cfg.series.test), cfg.series.format)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        extra_in = ()
        if args.weekly_covariates:
            if len(members) > 1:
                sys.exit("m4_hourly: --weekly-covariates scores one model (no --member)")
            root.mkdir(parents=True, exist_ok=True)
            base += weekly_table(history, root / "hourly_weekly.csv")
            extra_in = weekly_inputs(history, cfg.series.horizon)
        runs, train_s, steps = _train_members(args, members, base, root)
        forecasts, bands, forecast_s, timing = _forecast(
            args, runs, history, extra_in, cfg.series.horizon
        )
    period = cfg.series.period
    combined = combine_forecasts(forecasts, args.combine)
    scores = _scores(history, actuals, combined, period)
    r = lambda d: {k: round(v, 3) for k, v in d.items()}  # noqa: E731
    record = {
        "benchmark": "m4_hourly",
        "series": len(history),
        "horizon": cfg.series.horizon,
        "preset": cfg.model.preset,
        "cell": cfg.model.cell,
        "smape": scores["smape"],
        "mase": scores["mase"],
        "owa": scores["owa"],
        **{name: r(v) for name, v in scores["baselines"].items()},
        "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(sum(m["cpu_s"] for m in steps), 1),
        "forecast_seconds": round(forecast_s, 2),
        **steps[0],
        "threads": args.threads,
        "finite": bool(np.isfinite(combined).all()),
        "overrides": args.set,
        "weights": f"average of the last {args.average}" if args.average else "best",
        "intervals": _interval_scores(history, actuals, bands, period),
        **timing,
        "weekly_covariates": args.weekly_covariates,
        "interval_method": args.interval_method,
    }
    if args.interval_method == "normalized":
        record["scale_windows"] = args.scale_windows
        record["scale_steps"] = args.scale_steps
    if args.score_only:
        record["score_only"] = str(args.out)
    if len(members) > 1:
        record["combine"] = args.combine
        record["members"] = [
            {
                "overrides": extra,
                **steps[i],
                **{
                    k: v
                    for k, v in _scores(history, actuals, f, period).items()
                    if k != "baselines"
                },
            }
            for i, (extra, f) in enumerate(zip(members, forecasts, strict=True))
        ]
    print(json.dumps(record))


if __name__ == "__main__":
    run(main)
