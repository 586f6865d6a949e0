"""Rolling-origin backtests (Tashman 2000, "Out-of-sample tests of forecasting accuracy: an
analysis and review", IJF 16(4)): forecast each series from K origins, ``step`` values
apart, the last one ``horizon`` values before its end, and score every window against what
followed it, as darts' ``historical_forecasts`` and neuralforecast's
``cross_validation(n_windows, step_size)`` do.

By default one trained model forecasts every window (no refitting: cheap, but the model may
have seen the older windows' targets in training); ``refit`` trains the run's config afresh
on each window's history alone. Window k (0 = oldest) of a series of length n forecasts
``x[n - c : n - c + H]`` from ``x[:n - c]``, with ``c = H + (K - 1 - k) * step``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from pathlib import Path

import numpy as np

from transduce.config import ConfigError
from transduce.data.series import SeriesSet
from transduce.forecasting.intervals import interval_scores
from transduce.forecasting.metrics import baseline_scores, owa, score
from transduce.forecasting.origins import split_window

log = logging.getLogger("transduce.forecast")


def window_cuts(windows: int, step: int, horizon: int) -> list[int]:
    """How many values each window (oldest first) holds back from the end of a series."""
    if windows < 1 or step < 1:
        raise ValueError(f"backtest needs windows >= 1 and step >= 1, got {windows}, {step}")
    return [horizon + (windows - 1 - k) * step for k in range(windows)]


def score_window(hist, truth, point, bands, period: int) -> dict:
    """sMAPE / MASE / OWA (against Naive2 on the same window) and, per level, MSIS /
    ACD / coverage of one window's forecasts."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = baseline_scores(hist, truth, period)["Naive2"]
        ours = score(hist, truth, list(point), period)
    out = {**ours, "owa": owa(ours, ref), "naive2": ref}
    for key, (lo, hi) in bands.items():
        got = interval_scores(hist, truth, list(lo), list(hi), period, float(key))
        out.update({f"{name}_{key}": value for name, value in got.items()})
    return out


def backtest(
    forecaster,
    series: SeriesSet,
    windows: int,
    step: int,
    levels: list[float] = (),
    refit_dir: str | os.PathLike | None = None,
) -> dict:
    """Per-window and overall scores of ``forecaster`` (a :class:`Forecaster` or an
    ensemble) from ``windows`` rolling origins ``step`` values apart. ``refit_dir``: train
    the forecaster's config afresh per window there (``window-K/``) instead."""
    if refit_dir is not None:
        _claim_refit_dir(Path(refit_dir), _refit_key(forecaster, series, windows, step))
    spec = forecaster.spec
    horizon, period = spec.horizon, spec.period
    names = getattr(forecaster, "covariate_names", ())
    rows, pooled = [], {"hist": [], "truth": [], "point": [], "bands": {}}
    ends = getattr(forecaster, "origins", None)  # the input's ends after the training's
    base = ends(series.ids, series.timestamps) if ends else np.zeros(len(series), np.int64)
    first = horizon + (windows - 1) * step  # checked before the cuts are listed: 1e20 windows
    longest = max((len(v) for v in series.values), default=0)
    if first + max(2 * period, 2) > longest:
        raise ValueError(
            f"--windows {windows} --step {step}: the first origin is {first} values "
            f"before the end, the longest series has {longest}"
        )
    for k, cut in enumerate(window_cuts(windows, step, horizon)):
        keep, hist, truth = split_window(series.values, cut, horizon, max(2 * period, 2))
        if not keep:
            raise ValueError(f"window {k}: no series is longer than {cut} + {2 * period} values")
        model = forecaster if refit_dir is None else _refit(forecaster, hist, refit_dir, k)
        cov = fut = None
        if names:
            full = series.covariates(tuple(names))
            cov = [full[i][: len(series.values[i]) - cut] for i in keep]
            fut = [full[i][len(series.values[i]) - cut :] for i in keep]
        extra = (512, cov, fut) if names else ()
        # the phase input counts from the end of the series the model was trained on: the
        # input's end (or where the input ends after it, `base`) for the run, this history
        # ending `cut` before it; the history's own end for a model refitted on it
        origin = 0 if refit_dir is not None else base[keep] - cut
        point, bands = model.forecast_intervals(hist, list(levels), *extra, origin=origin)
        row = score_window(hist, truth, point, bands, period)
        rows.append(
            {
                "window": k,
                "cut": cut,
                "series": len(keep),
                "skipped": len(series) - len(keep),
                **row,
            }
        )
        pooled["hist"] += hist
        pooled["truth"] += truth
        pooled["point"] += list(point)
        for key, (lo, hi) in bands.items():
            pooled["bands"].setdefault(key, ([], []))
            pooled["bands"][key][0].extend(lo)
            pooled["bands"][key][1].extend(hi)
    overall = score_window(
        pooled["hist"], pooled["truth"], pooled["point"], pooled["bands"], period
    )
    return {"windows": rows, "overall": overall, "refit": refit_dir is not None}


MARK = "refit.json"  # what a --refit folder holds besides its window-K runs


def check_refit_dir(out: str | os.PathLike) -> None:
    """``--refit --out``: a new or empty folder (not a link) that the per-window runs
    fill, or one a ``--refit`` began (its ``refit.json``: the same backtest resumes there,
    window by window, :func:`_claim_refit_dir`); a folder of the user's (its files, an
    --input there) is refused before anything is written."""
    from transduce.errors import DataError

    out = Path(out)
    if out.is_symlink():
        raise DataError(out, None, "is a symbolic link: give --out a new folder of its own")
    if out.exists() and not out.is_dir():
        raise DataError(out, None, "is a file, not a folder: give --out a new folder")
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if names and MARK not in names:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise DataError(
            out,
            None,
            f"is not empty (it holds {shown}): backtest --refit writes its per-window "
            "runs into a new or empty folder; nothing was written",
        )


def _refit_key(forecaster, series: SeriesSet, windows: int, step: int) -> str:
    """What makes a --refit the same one: the run's config, the windows and the series."""
    import hashlib
    import json

    from transduce.config import to_dict

    h = hashlib.sha256(json.dumps([to_dict(forecaster.cfg), windows, step]).encode())
    for name, values in zip(series.ids, series.values, strict=True):
        h.update(name.encode("utf-8", "surrogatepass") + b"\0")
        h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return h.hexdigest()


def _claim_refit_dir(out: Path, key: str) -> None:
    """Mark ``out`` as this backtest's (``refit.json``), or check that it is: a rerun of
    the same backtest after a kill resumes its window runs; another backtest's is refused."""
    import json

    from transduce.atomic import atomic_write_text
    from transduce.errors import DataError

    check_refit_dir(out)
    mark = out / MARK
    if mark.is_file():
        try:
            theirs = json.loads(mark.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            theirs = None
        if not isinstance(theirs, dict) or theirs.get("key") != key:
            raise DataError(
                out,
                None,
                "holds the runs of another backtest --refit (other config, windows, step or "
                "series): give a new --out",
            )
        log.info("%s: resuming the backtest --refit begun there", out)
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(mark, json.dumps({"key": key}) + "\n")


def _refit(forecaster, histories: list[np.ndarray], out: str | os.PathLike, k: int):
    """Train the forecaster's config on ``histories`` (M4 wide CSV) in ``out/window-k``."""
    from transduce.atomic import atomic_write_text
    from transduce.config import ConfigError
    from transduce.forecasting.pipeline import Forecaster
    from transduce.tasks.train import train

    if not hasattr(forecaster, "cfg"):
        raise ConfigError("backtest --refit needs one run (not an ensemble)")
    if getattr(forecaster, "covariate_names", ()):
        raise ConfigError("backtest --refit does not take covariates yet")
    root = Path(out) / f"window-{k}"
    root.mkdir(exist_ok=True)  # in --out, ours (refit.json): new, or a resumed backtest's
    width = max(len(x) for x in histories) + 1
    lines = [",".join(f'"V{i + 1}"' for i in range(width))]
    for i, x in enumerate(histories):
        cells = [f'"S{i}"', *(f"{v:.10g}" for v in x)] + [""] * (width - 1 - len(x))
        lines.append(",".join(cells))
    text = "\n".join(lines) + "\n"
    csv = root / "series.csv"
    if not csv.is_file() or csv.is_symlink() or csv.read_text(encoding="utf-8") != text:
        atomic_write_text(csv, text)  # the same bytes for the same backtest: resumable
    cfg = forecaster.cfg
    # absolute: the same command run again from another folder (a requeued job) resumes
    series = dataclasses.replace(cfg.series, train=os.path.abspath(csv), format="m4", test="")
    resume = (root / "run" / "config.yaml").is_file()  # a window a kill interrupted, or done
    with contextlib.redirect_stdout(sys.stderr):  # stdout stays the backtest's JSON line
        train(dataclasses.replace(cfg, series=series), root / "run", resume=resume)
    log.info("backtest window %d: refitted into %s", k, root / "run")
    return Forecaster.load(root / "run")


def with_actuals(series: SeriesSet, after: SeriesSet, path, spec) -> SeriesSet:
    """``backtest --actuals``: ``series`` with ``after`` (the values that followed, same
    ids) appended, checked (:func:`_check_actuals`; timestamps that continue the input's)."""
    # timestamps tell the phase where the joined series end; without them, whole seasons
    period = spec.period if series.timestamps is None else 0
    _check_actuals(path, after, spec.horizon, period)
    joined = _joined(series, after, str(path))
    if joined.timestamps is not None:  # they continue the input: no overlap, no gap
        from transduce.forecasting.output import check_timestamps

        check_timestamps(path, joined)
    return joined


def _check_actuals(path, after, horizon: int, period: int) -> None:
    """``backtest --actuals``: as many values after every series (else one line naming the
    file and the first series that differs: its windows would sit elsewhere in the calendar
    than the others'), and a warning when that count is not whole seasons of ``period``
    (0: none, timestamps tell the phase; else it counts from the series' end)."""
    from transduce.errors import DataError

    counts = [len(v) for v in after.values]
    bad = [i for i, n in enumerate(counts) if n != counts[0]]
    if bad:
        raise DataError(
            path,
            None,
            f"series {after.ids[bad[0]][:40]}: {counts[bad[0]]} values, series "
            f"{after.ids[0][:40]}: {counts[0]}; --actuals holds as many values after every "
            f"series (the test set: {horizon}, the horizon)",
        )
    if counts and period and counts[0] % period:
        log.warning(
            "%s: %d values after each series, not whole seasons of %d: the model's phase "
            "input counts from the series' end, so its windows read the calendar %d steps "
            "off from where training ended",
            path,
            counts[0],
            period,
            counts[0] % period,
        )


def _joined(series, after, where: str):
    """``series`` with ``after`` appended: the values, and a long table's timestamps and
    covariate columns (the actuals must hold the same columns)."""
    joined = [np.r_[x, y] for x, y in zip(series.values, after.values, strict=True)]
    out = SeriesSet(series.ids, joined, series.report)
    if set(after.columns) != set(series.columns):
        raise ConfigError(f"{where}: its columns differ from the input's {list(series.columns)}")
    out.columns = {
        c: [np.r_[a, b] for a, b in zip(v, after.columns[c], strict=True)]
        for c, v in series.columns.items()
    }
    if series.timestamps is not None and after.timestamps is not None:
        pairs = zip(series.timestamps, after.timestamps, strict=True)
        out.timestamps = [list(a) + list(b) for a, b in pairs]
    return out
