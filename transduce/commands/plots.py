"""Figures for runs: attention heatmaps and learning curves, written as image files.

Figures are built with ``matplotlib.figure.Figure`` and rendered by Agg, so pyplot's global
figure registry and backend are never touched; fonts are set only inside ``rc_context``.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from transduce.atomic import write_output
from transduce.data.corpus import read_lines
from transduce.errors import DataError

# DejaVu Sans ships with matplotlib and covers Latin, Greek and Cyrillic; the others, when
# installed, fill in other scripts through matplotlib's per-glyph font fallback.
PREFERRED_FONTS = (
    "DejaVu Sans",
    "Noto Sans",
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans Arabic",
    "Noto Sans Devanagari",
    "Noto Sans Hebrew",
    "Arial Unicode MS",
)
METRICS = ("loss", "ppl", "acc", "exact", "bleu")
_WHITESPACE = {" ": "␣", "\t": "⇥", "\n": "↵", "\r": "␍", "\u00a0": "⍽"}


@lru_cache(maxsize=1)
def _font_families() -> list[str]:
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in PREFERRED_FONTS if name in installed] or ["sans-serif"]


def _rc() -> dict[str, Any]:
    return {"font.family": _font_families()}


def visible_token(token: str) -> str:
    """``token`` with whitespace drawn visibly ("a b" -> "a␣b"); "" becomes "∅"."""
    if not token:
        return "∅"
    return "".join(_WHITESPACE.get(ch, "␣") if ch.isspace() else ch for ch in token)


def visible_text(text: str) -> str:
    """A title line: the tab between the fields of a several-input record becomes a
    visible separator (``question ⇥ document``), other control characters a space."""
    text = text.replace("\t", " ⇥ ")
    return "".join(" " if ch in "\r\n\v\f" else ch for ch in text)


def _save_atomic(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Render ``fig``, then write it whole (:func:`~transduce.atomic.write_output`: renamed
    into place, so no reader sees half; through a FIFO, device or link)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    known = FigureCanvasAgg(fig).get_supported_filetypes()
    if fmt not in known:  # before anything is written
        raise DataError(path, None, f"a .{fmt} image cannot be written: use {', '.join(known)}")
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_figure(buffer, format=fmt, bbox_inches="tight", dpi=120)
    write_output(path, buffer.getvalue())
    return path


def _as_matrix(weights: Any) -> np.ndarray:
    if hasattr(weights, "detach"):  # a torch tensor, possibly on GPU or requiring grad
        weights = weights.detach().float().cpu().numpy()
    return np.asarray(weights, dtype=float)


def plot_attention(
    weights: Any,
    src_tokens: Sequence[str],
    out_tokens: Sequence[str],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """Heatmap of attention ``weights`` [len(out_tokens), len(src_tokens)] saved to ``path``.

    Source tokens label the x axis, output tokens the y axis; whitespace tokens are drawn
    visibly. Returns the path written.
    """
    matrix = _as_matrix(weights)
    expected = (len(out_tokens), len(src_tokens))
    if matrix.shape != expected:
        raise ValueError(
            f"weights shape {matrix.shape} does not match (len(out_tokens), "
            f"len(src_tokens)) = {expected}"
        )
    with matplotlib.rc_context(_rc()):
        return _save_atomic(attention_figure(matrix, src_tokens, out_tokens, title), path)


def attention_figure(
    matrix: np.ndarray, src_tokens: Sequence[str], out_tokens: Sequence[str], title: str | None
) -> Figure:
    """The heatmap of :func:`plot_attention` as a Figure (drawn under its fonts)."""
    n_out, n_src = matrix.shape
    # Source labels stay horizontal (Greek or Cyrillic read sideways is unreadable), so each
    # column is as wide as the longest label.
    longest = max((len(visible_token(t)) for t in src_tokens), default=1)
    width = min(4.0 + n_src * max(0.32, 0.085 * longest + 0.1), 60.0)
    height = min(2.5 + 0.32 * n_out, 60.0)
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(width, height))
        ax = fig.add_subplot()
        image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0.0, interpolation="nearest")
        ax.set_xticks(range(n_src), [visible_token(t) for t in src_tokens], rotation=0)
        ax.set_yticks(range(n_out), [visible_token(t) for t in out_tokens])
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        if title:
            ax.set_title(visible_text(title))
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    return fig


def read_metrics(metrics_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl file; blank lines skipped, anything else not JSON raises."""
    records = []
    lines = read_lines(metrics_path)  # bounded lines; missing, bad UTF-8: FILE(:LINE)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(metrics_path, lineno, f"not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(metrics_path, lineno, "expected a JSON object")
        records.append(record)
    return records


def _series(
    records: list[dict[str, Any]], metric: str
) -> dict[str, tuple[list[float], list[float]]]:
    """{split: (steps, values)} for one metric, in file order."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for index, record in enumerate(records):
        value = record.get(metric)
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        step = record.get("step", record.get("epoch", index))
        steps, values = series.setdefault(str(record.get("split", "train")), ([], []))
        steps.append(step)
        values.append(value)
    return series


def plot_learning_curves(
    metrics_path: str | os.PathLike[str],
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    """One subplot per metric in a run's metrics.jsonl, a line per split, against step."""
    records = read_metrics(metrics_path)
    if not any(_series(records, m) for m in METRICS):
        raise ValueError(f"{metrics_path}: none of the metrics {METRICS} found")
    with matplotlib.rc_context(_rc()):
        return _save_atomic(curves_figure(records, title), path)


def curves_figure(records: list[dict[str, Any]], title: str | None = None) -> Figure:
    """The panels of :func:`plot_learning_curves` as a Figure."""
    panels = [(m, s) for m in METRICS if (s := _series(records, m))]
    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(4.5 * ncols, 3.4 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (metric, series) in zip(axes, panels, strict=False):
            for split, (steps, values) in sorted(series.items()):
                # Validation points are sparse: mark them so single evaluations show; a
                # train series of one point needs a marker too, or nothing is drawn.
                marker = "o" if split != "train" or len(steps) == 1 else None
                ax.plot(steps, values, label=split, marker=marker, markersize=3, linewidth=1.2)
            ax.set_title(metric)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        if title:
            fig.suptitle(title)
    return fig


def plot_forecast(
    names: Sequence[str],
    histories: Sequence[np.ndarray],
    forecasts: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    actuals: Sequence[np.ndarray] | None = None,
    context: int | None = 168,
) -> Path:
    """One panel per series: the last ``context`` history values, the forecast after them
    and, when given, the actual values over the forecast horizon."""
    if not (len(names) == len(histories) == len(forecasts)) or not names:
        raise ValueError(
            f"need as many names ({len(names)}), histories ({len(histories)}) "
            f"and forecasts ({len(forecasts)}), at least one"
        )
    nrows = len(names)
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(9.0, 2.6 * nrows), layout="constrained")
        axes = fig.subplots(nrows, 1, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            hist = np.asarray(histories[i], float)
            shown = hist[-context:] if context else hist
            start = len(hist) - len(shown)
            ax.plot(
                np.arange(start, len(hist)), shown, color="0.35", linewidth=1.0, label="history"
            )
            steps = np.arange(len(hist), len(hist) + len(forecasts[i]))
            ax.plot(steps, forecasts[i], color="tab:blue", linewidth=1.4, label="forecast")
            if actuals is not None:
                ax.plot(
                    steps,
                    np.asarray(actuals[i], float)[: len(steps)],
                    color="tab:orange",
                    linewidth=1.0,
                    linestyle="--",
                    label="actual",
                )
            ax.axvline(len(hist) - 0.5, color="0.6", linewidth=0.8)
            ax.set_title(str(names[i]), fontsize="medium")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small", loc="upper left")
        axes[-1].set_xlabel("time step")
        return _save_atomic(fig, path)
