"""One rolling origin of a set of series: each history cut some values before its end and
the actuals that follow (what a backtest scores, and what normalized intervals scale by).
A module of its own so that both import it without importing each other."""

from __future__ import annotations

import numpy as np


def split_window(values: list[np.ndarray], cut: int, horizon: int, min_history: int):
    """(kept indices, histories, actuals) of one window of the series ``values``: each
    history ends ``cut`` values before its series' end; series whose history would be
    shorter than ``min_history`` are left out (and counted by the caller)."""
    keep = [i for i, x in enumerate(values) if len(x) - cut >= min_history]
    hist = [values[i][: len(values[i]) - cut] for i in keep]
    truth = [values[i][len(values[i]) - cut :][:horizon] for i in keep]
    return keep, hist, truth
