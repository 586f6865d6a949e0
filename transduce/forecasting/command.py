"""``transduce forecast`` and ``transduce plot forecast``: load a forecasting run (or an
ensemble of runs), read a series file, forecast, write and score."""

from __future__ import annotations

import argparse
import json

from transduce import cli_options as opt
from transduce.config import ConfigError


def _forecast_run(args: argparse.Namespace):
    from transduce.data.series import read_series, require_positive
    from transduce.forecasting.output import warn_short_series
    from transduce.forecasting.pipeline import Forecaster

    if not args.input:
        raise ConfigError(f"{args.command}: give --input SERIES_FILE")
    models = args.model if isinstance(args.model, list) else [args.model]
    _refuse_output_over_input(args, models)
    if len(models) > 1:
        from transduce.ensemble import ForecastEnsemble

        forecaster = ForecastEnsemble.load(models, args.checkpoint, args.device, args.combine)
    else:
        forecaster = Forecaster.load(models[0], args.checkpoint, device=args.device)
    series = read_series(args.input, args.format, args.on_bad_line)
    members = getattr(forecaster, "members", [forecaster])
    for member in members:
        require_positive(series, member.cfg.series.scaling)
    actuals = read_series(args.actuals, args.format) if args.actuals else None
    warn_short_series(series, max(m.spec.lookback for m in members))
    return forecaster, series, forecaster.forecast(series.values), actuals


def _refuse_output_over_input(args: argparse.Namespace, models: list[str]) -> None:
    """--output may not be --input, --actuals or a file of a model (same inode)."""
    from pathlib import Path

    from transduce.atomic import refuse_overwriting_inputs

    files = [str(p) for m in models if Path(m).is_dir() for p in Path(m).iterdir()]
    refuse_overwriting_inputs(args.output, [args.input, args.actuals, *files])


def forecast_command(args: argparse.Namespace) -> None:
    from transduce.forecasting.output import check_finite, write_long_forecasts
    from transduce.forecasting.pipeline import evaluate_forecasts, write_forecasts

    forecaster, series, forecasts, actuals = _forecast_run(args)
    check_finite(series.ids, forecasts)
    result = {"series": len(series), "horizon": forecasts.shape[1], "output": args.output}
    if series.timestamps is not None:  # long input: long output with future timestamps
        result["frequency"] = write_long_forecasts(args.output, series, forecasts)
    else:
        write_forecasts(args.output, series.ids, forecasts)
    if actuals is not None:
        result.update(evaluate_forecasts(series, actuals, forecasts, forecaster.spec.period))
    print(json.dumps(opt.round_floats(result, 4)))


def plot_forecast_command(args: argparse.Namespace) -> None:
    from transduce.plots import plot_forecast

    _, series, forecasts, actuals = _forecast_run(args)
    wanted = args.series.split(",") if args.series else series.ids[:3]
    missing = [name for name in wanted if name not in series.ids]
    if missing:
        raise ConfigError(f"plot forecast: no series {missing[:5]} in {args.input}")
    rows = [series.ids.index(name) for name in wanted]
    out = plot_forecast(
        wanted, [series.values[i] for i in rows], [forecasts[i] for i in rows], args.output,
        actuals=None if actuals is None else [actuals.values[i] for i in rows],
    )  # fmt: skip
    print(out)


def add_plot_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("forecast plots")
    g.add_argument("--input", help="series file (M4 wide CSV or id,timestamp,value)")
    g.add_argument("--actuals", help="the values that followed (same layout), drawn dashed")
    g.add_argument("--series", help="comma-separated series ids (default: the first three)")
    g.add_argument("--format", choices=["auto", "m4", "long"], default="auto",
                   help="series layout (default: from the file's header)")  # fmt: skip
    g.add_argument("--on-bad-line", choices=["error", "skip"], default="error",
                   help="stop at a bad line (default) or skip and count it")  # fmt: skip
    p.set_defaults(checkpoint="best", device="cpu")


def add_parser(sub) -> None:
    p = sub.add_parser("forecast", help="forecast the steps after each series (and score them)")
    p.add_argument("--model", required=True, action="append", metavar="DIR",
                   help="run directory of a forecasting run; repeat for an ensemble")  # fmt: skip
    p.add_argument("--combine", choices=["median", "mean"], default="median",
                   help="how an ensemble combines forecasts (default median)")  # fmt: skip
    p.add_argument("--input", required=True, help="series file (M4 wide CSV or id,timestamp,value)")
    p.add_argument("--output", required=True,
                   help="CSV: id,F1..FH (id,timestamp,value for long input)")  # fmt: skip
    p.add_argument("--actuals", help="the values that followed: print sMAPE/MASE/OWA too")
    p.add_argument("--format", choices=["auto", "m4", "long"], default="auto",
                   help="series layout (default: from the file's header)")  # fmt: skip
    p.add_argument("--on-bad-line", choices=["error", "skip"], default="error",
                   help="stop at a bad line (default) or skip and count it")  # fmt: skip
    p.add_argument("--checkpoint", choices=["best", "last", "averaged"], default="best",
                   help="best validation weights (default), the last, or those written by "
                        "`transduce average`")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--threads", type=opt.int_at_least(0), default=0,
                   help="torch CPU threads (0: torch's default)")  # fmt: skip
    p.set_defaults(func=forecast_command)
