"""``transduce forecast`` and ``transduce plot forecast``: load a forecasting run (or an
ensemble of runs), read a series file, forecast, write and score."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from transduce.commands import options as opt
from transduce.config import ConfigError
from transduce.errors import DataError

log = logging.getLogger("transduce.forecast")


def load_forecaster(args: argparse.Namespace):
    """A run on torch, an ensemble of runs, or an ONNX export on the runtime (no torch)."""
    models = args.model if isinstance(args.model, list) else [args.model]
    _refuse_output_over_input(args, models)
    if len(models) > 1:
        from transduce.forecasting.ensemble import ForecastEnsemble

        return ForecastEnsemble.load(models, args.checkpoint, args.device, args.combine)
    if Path(models[0], "manifest.json").is_file():  # an export: onnxruntime, no torch
        from transduce.runtime.forecast import ExportedForecaster

        if getattr(args, "checkpoint", "best") != "best":  # it was ignored without a word
            said = f"--checkpoint {args.checkpoint}: {models[0]}"
            raise ConfigError(f"{said} is an export of one checkpoint (its best or as chosen)")

        return ExportedForecaster.load(models[0], getattr(args, "threads", 0), args.device)
    from transduce.forecasting.pipeline import Forecaster

    return Forecaster.load(models[0], args.checkpoint, device=args.device)


def _forecast_run(args: argparse.Namespace):
    from transduce.data.series import require_positive
    from transduce.forecasting.frames import load_series as read_series
    from transduce.forecasting.output import check_timestamps, warn_short_series

    if not args.input:
        raise ConfigError(f"{args.command}: give --input SERIES_FILE")
    forecaster = load_forecaster(args)
    series = read_series(args.input, args.format, args.on_bad_line)
    check_timestamps(args.input, series)  # the future stamps are written after the model
    members = getattr(forecaster, "members", [forecaster])
    for member in members:
        require_positive(series, member.spec.scaling)
    actuals = read_series(args.actuals, args.format) if args.actuals else None
    warn_short_series(series, max(m.spec.lookback for m in members))
    extra = _covariates(forecaster, series, getattr(args, "future", None))
    levels = getattr(args, "level", None) or []
    _check_interval_flags(args, levels)
    origin = forecaster.origins(series.ids, series.timestamps)  # histories ending later
    if levels and getattr(args, "interval_method", "conformal") == "normalized":
        forecasts, bands = _normalized(args, forecaster, series, levels, extra, origin)
    else:
        forecasts, bands = forecaster.forecast_intervals(
            series.values, levels, *extra, origin=origin
        )
    args.bands = bands
    return forecaster, series, forecasts, actuals


def _check_interval_flags(args: argparse.Namespace, levels: list) -> None:
    """--scale-windows / --scale-steps shape normalized bands only, which need --level: set
    otherwise they were ignored without a word."""
    method = getattr(args, "interval_method", "conformal")
    scaling = [f for f in ("scale_windows", "scale_steps") if getattr(args, f, None) is not None]
    if scaling and method != "normalized":
        flag = "--" + scaling[0].replace("_", "-")
        raise ConfigError(f"{flag} applies to --interval-method normalized only")
    if method == "normalized" and not levels:
        raise ConfigError("--interval-method normalized: give the bands' --level, e.g. 80 95")


def _normalized(args, forecaster, series, levels, extra, origin):
    """``--interval-method normalized`` (:mod:`transduce.forecasting.normalized`)."""
    from transduce.forecasting.normalized import TooFewSeries, normalized_intervals

    if extra:
        raise ConfigError(
            "--interval-method normalized: not for runs with covariates (its backtests "
            "would need the covariates at every past origin); use conformal"
        )
    horizon = forecaster.spec.horizon
    windows = 12 if args.scale_windows is None else args.scale_windows
    steps = 3 if args.scale_steps is None else args.scale_steps
    try:
        values = series.values
        return normalized_intervals(
            forecaster.forecast, values, horizon, levels, windows, steps, origin
        )
    except TooFewSeries as err:  # the run's own calibration (normalized.json) can serve
        members = getattr(forecaster, "members", [forecaster])
        if any(getattr(m, "normalized", None) is None for m in members):
            raise
        log.warning("%s: using the run's stored normalized calibration", err)
    return forecaster.forecast_intervals(series.values, levels, method="normalized", origin=origin)


def _covariates(forecaster, series, future_path: str | None) -> tuple:
    """``(batch_size, covariates, future)`` for a run trained with covariates, else ()."""
    from transduce.forecasting.frames import future_rows, load_series

    names = getattr(forecaster, "covariate_names", ())
    series.note_unused(tuple(names), log)
    if not names:
        if future_path:
            log.warning("--future %s is not used: this run takes no covariates", future_path)
        return ()
    known = names[: forecaster.spec.covariates]  # the future-known ones come first
    future = None
    if known:
        if not future_path:
            raise ConfigError(
                f"this run takes future-known covariates {list(known)}: "
                "give --future FILE (unique_id, ds and those columns)"
            )
        fut = load_series(future_path, need_y=False)
        if series.timestamps is None or not series.columns:
            raise ConfigError("future covariates need the history as a long table too")
        horizon = forecaster.spec.horizon
        future = future_rows(series, fut, tuple(known), horizon, str(future_path))
    return 512, series.covariates(names), future


def level_type(text: str) -> float:
    """An argparse ``type``: an interval level in percent, a finite number in (0, 100)."""
    value = opt.positive_float(text)
    if value >= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage below 100, got {value:g}")
    return value


def refuse_overwrite(output: str | None, *inputs: str | None) -> None:
    """An output never overwrites an input: stop before reading anything."""
    import os

    for path in inputs:
        exist = output and path and os.path.exists(output) and os.path.exists(path)
        if exist and os.path.samefile(output, path):
            raise ConfigError(f"--output {output} is an input ({path}): choose another file")


def _refuse_output_over_input(args: argparse.Namespace, models: list[str]) -> None:
    """--output may not be --input, --actuals, a file of a model or a new name in one of
    its folders (its checkpoints, conformal.json: the run would no longer load)."""
    from transduce.atomic import refuse_overwriting_inputs, refuse_writing_into_models
    from transduce.config import run_data_files

    data = [p for m in models for p in run_data_files(m)]  # a backtest's default input
    refuse_overwriting_inputs(args.output, [args.input, args.actuals, *data])
    refuse_writing_into_models(args.output, models)


def forecast_command(args: argparse.Namespace) -> None:
    from transduce.forecasting.output import (
        check_finite,
        evaluate_forecasts,
        write_forecasts,
        write_long_forecasts,
    )

    refuse_overwrite(args.output, args.input, args.actuals, args.future)
    forecaster, series, forecasts, actuals = _forecast_run(args)
    check_finite(series.ids, forecasts)
    result = {"series": len(series), "horizon": forecasts.shape[1], "output": args.output}
    if series.timestamps and not isinstance(series.timestamps[0][0], str):  # a pandas table
        from transduce.forecasting.frames import forecasts_frame, write_table

        write_table(forecasts_frame(series, forecasts, args.bands), args.output)
    elif Path(args.output).suffix.lower() in (".parquet", ".pq"):
        raise DataError(
            args.output,
            None,
            "Parquet output is written for long-table input (unique_id, ds, y); this "
            "input's forecasts are CSV: give --output a .csv name",
        )
    elif series.timestamps is not None:  # long input: long output with future timestamps
        result["frequency"] = write_long_forecasts(args.output, series, forecasts, args.bands)
    elif args.bands:
        write_long_forecasts(args.output, series, forecasts, args.bands)  # id,step,value,...
    else:
        write_forecasts(args.output, series.ids, forecasts)
    if actuals is not None:
        result.update(evaluate_forecasts(series, actuals, forecasts, forecaster.spec.period))
    print(json.dumps(opt.round_floats(result, 4)))


MAX_PANELS = 24  # series in one plot forecast picture


def plot_forecast_command(args: argparse.Namespace) -> None:
    from transduce.commands.plots import plot_forecast

    wanted = list(dict.fromkeys(args.series.split(","))) if args.series else None
    if wanted is not None and len(wanted) > MAX_PANELS:  # 414 panels: 1.9 GB, a 20 MB image
        raise ConfigError(
            f"plot forecast: --series names {len(wanted)} series; at most {MAX_PANELS} "
            "panels a picture (write forecasts with transduce forecast for more)"
        )
    _, series, forecasts, actuals = _forecast_run(args)
    wanted = wanted or series.ids[:3]
    missing = [name for name in wanted if name not in series.ids]
    if missing:
        raise ConfigError(f"plot forecast: no series {missing[:5]} in {args.input}")
    rows = [series.ids.index(name) for name in wanted]
    if actuals is not None and actuals.ids != series.ids:  # drawn by row: the same series
        raise DataError(
            args.actuals, None, f"series ids differ from {args.input}'s (same order needed)"
        )
    out = plot_forecast(
        wanted,
        [series.values[i] for i in rows],
        [forecasts[i] for i in rows],
        args.output,
        actuals=None if actuals is None else [actuals.values[i] for i in rows],
    )
    print(out)


def add_plot_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("forecast plots")
    g.add_argument("--input", help="series file (M4 wide CSV or id,timestamp,value)")
    g.add_argument("--actuals", help="the values that followed (same layout), drawn dashed")
    g.add_argument(
        "--series",
        help=f"comma-separated series ids, at most {MAX_PANELS} (default: the first three)",
    )
    _add_layout_flags(g)
    p.set_defaults(checkpoint="best", device="cpu")


def add_io_flags(p: argparse.ArgumentParser) -> None:
    """The series in, forecasts out, intervals and covariates (``transduce forecast`` and
    ``python -m transduce.runtime forecast``)."""
    p.add_argument("--input", required=True, help="series file (M4 wide CSV or id,timestamp,value)")
    p.add_argument(
        "--output",
        required=True,
        help="CSV: id,F1..FH (id,timestamp,value for long input; unique_id,ds,y "
        "for a long table, Parquet for a .parquet name)",
    )
    p.add_argument("--actuals", help="the values that followed: print sMAPE/MASE/OWA too")
    _add_layout_flags(p)
    p.add_argument(
        "--level",
        type=level_type,
        nargs="+",
        default=[],
        metavar="PCT",
        help="conformal prediction intervals at these levels, e.g. 80 95: lo-80,hi-80,... columns",
    )
    p.add_argument(
        "--interval-method",
        choices=["conformal", "normalized"],
        default="conformal",
        help="conformal: the run's calibration (one band for every series, default); "
        "normalized: each series' band scaled by the model's recent errors on it "
        "(--scale-windows backtests; calibrated on the input's series: 95%% needs 19)",
    )
    p.add_argument(
        "--scale-windows",
        type=opt.int_at_least(1, 1000),
        default=None,
        metavar="K",
        help="--interval-method normalized: past horizons that set each series' scale (default 12)",
    )
    p.add_argument(
        "--scale-steps",
        type=opt.int_at_least(0, 10_000),
        default=None,
        metavar="W",
        help="--interval-method normalized: a scale per horizon step, over W neighbouring "
        "steps (default 3; 0: one scale per series)",
    )
    p.add_argument(
        "--future",
        help="future-known covariates over the forecast steps (a "
        "long table: unique_id, ds and the columns the run was trained with)",
    )


def add_parser(sub) -> None:
    p = sub.add_parser("forecast", help="forecast the steps after each series (and score them)")
    p.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="DIR",
        help="a forecasting run's directory (repeat for an ensemble) or its ONNX export "
        "(transduce export onnx; runs without torch)",
    )
    p.add_argument(
        "--combine",
        choices=["median", "mean"],
        default="median",
        help="how an ensemble combines forecasts (default median)",
    )
    add_io_flags(p)
    _add_weights_flags(
        p, "best validation weights (default), the last, or those written by `transduce average`"
    )
    p.set_defaults(func=forecast_command)
    add_backtest_parser(sub)


def backtest_command(args: argparse.Namespace) -> None:
    from transduce.config import data_path
    from transduce.data.series import require_positive
    from transduce.forecasting.backtest import backtest, with_actuals
    from transduce.forecasting.frames import load_series
    from transduce.forecasting.pipeline import Forecaster

    if args.refit and not args.out:
        raise ConfigError("backtest --refit: give --out DIR for the per-window runs")
    refuse_overwrite(args.output, args.input, args.actuals)
    _refuse_output_over_input(args, [args.model])  # nor a file of the run (conformal.json)
    if args.refit:  # before the model loads: a new or empty folder, not in the run
        from transduce.atomic import refuse_writing_into_models
        from transduce.forecasting.backtest import check_refit_dir

        refuse_writing_into_models(args.out, [args.model])
        check_refit_dir(args.out)
    if Path(args.model, "manifest.json").is_file():  # said "not a transduce run"
        raise ConfigError(
            f"{args.model}: an export; backtest scores a training run (give the run it was "
            "exported from)"
        )
    forecaster = Forecaster.load(args.model, args.checkpoint, device=args.device)
    s = forecaster.cfg.series
    path = args.input or data_path(s.train)
    series = load_series(path, args.format, args.on_bad_line)
    series.note_unused(tuple(getattr(forecaster, "covariate_names", ())), log)
    if args.actuals:  # the values that followed: appended, so the last window is the test
        after = load_series(args.actuals, args.format, args.on_bad_line)
        if after.ids != series.ids:
            raise ConfigError(f"{args.actuals}: series ids differ from {path} (same order needed)")
        series = with_actuals(series, after, args.actuals, forecaster.spec)
    require_positive(series, s.scaling)
    result = backtest(
        forecaster,
        series,
        args.windows,
        args.step or s.horizon,
        args.level,
        args.out if args.refit else None,
    )
    if args.output:
        from transduce.atomic import write_output

        text = json.dumps(opt.round_floats(result, 6), indent=1) + "\n"
        write_output(args.output, text.encode("utf-8"))
    print(json.dumps(opt.round_floats(result, 4)))


def add_backtest_parser(sub) -> None:
    p = sub.add_parser("backtest", help="score a forecasting run from K rolling origins")
    p.add_argument("--model", required=True, metavar="DIR", help="run directory")
    p.add_argument("--input", help="series file (default: the run's series.train)")
    p.add_argument("--actuals", help="the values that followed --input, appended to it")
    p.add_argument("--windows", type=opt.int_at_least(1), default=3, help="origins (default 3)")
    p.add_argument(
        "--step",
        type=opt.int_at_least(1),
        default=0,
        help="values between origins (default: the horizon)",
    )
    p.add_argument(
        "--level",
        type=level_type,
        nargs="+",
        default=[],
        metavar="PCT",
        help="interval levels to score (MSIS / ACD / coverage), e.g. 80 95",
    )
    p.add_argument("--refit", action="store_true", help="train afresh per window (slow)")
    p.add_argument("--out", help="--refit: directory for the per-window runs")
    p.add_argument("--output", help="also write the full result as JSON here")
    _add_layout_flags(p)
    _add_weights_flags(p, "which weights forecast (default best, the calibrated ones)")
    p.set_defaults(func=backtest_command)


def _add_layout_flags(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """How a series file is read: its layout and what a bad line does."""
    p.add_argument(
        "--format",
        choices=["auto", "m4", "long"],
        default="auto",
        help="series layout (default: from the file's header)",
    )
    p.add_argument(
        "--on-bad-line",
        choices=["error", "skip"],
        default="error",
        help="stop at a bad line (default) or skip and count it",
    )


def _add_weights_flags(p: argparse.ArgumentParser, checkpoint_help: str) -> None:
    """Which weights of the run, where and on how many CPU threads they run."""
    p.add_argument(
        "--checkpoint",
        choices=["best", "last", "averaged"],
        default="best",
        help=checkpoint_help,
    )
    opt.add_device_flag(p)
    p.add_argument(
        "--threads",
        type=opt.int_at_least(0, opt.MAX_THREADS),
        default=0,
        help="torch CPU threads (0: torch's default)",
    )
