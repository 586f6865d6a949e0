"""A tiny forecasting run with 80% and 95% quantile outputs, trained once per session."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from transduce.commands.cli import main

H, M = 6, 6  # horizon and seasonal period


def toy_series(n_series: int = 24, length: int = 72, seed: int = 0) -> np.ndarray:
    """Noisy positive seasonal series ``[N, length]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    level = rng.uniform(20, 200, (n_series, 1))
    noise = rng.normal(1.0, 0.04, (n_series, length))
    return level * (1 + 0.4 * np.sin(2 * np.pi * t / M)[None, :]) * noise


def write_wide(path, rows) -> None:
    width = max(len(r) for r in rows) + 1
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL)
        w.writerow([f"V{i + 1}" for i in range(width)])
        for i, r in enumerate(rows):
            w.writerow([f"S{i}", *(f"{v:.4f}" for v in r)] + [""] * (width - 1 - len(r)))


def tiny_series_config(train: str, train_options: dict | None = None, **series) -> dict:
    """A tiny Luong-GRU forecasting config on the series file ``train``; ``series`` and
    ``train_options`` override keys of its ``series`` and ``train`` sections."""
    return {
        "series": {
            "format": "auto",
            "train": train,
            "horizon": H,
            "lookback": 18,
            "period": M,
            "stride": 2,
            **series,
        },
        "model": {
            "preset": "luong",
            "cell": "gru",
            "attention": {"input_feeding": False},
            "encoder": {"embed_size": 8, "hidden_size": 16},
            "decoder": {"embed_size": 8, "hidden_size": 16},
        },
        "train": {
            "lr": 0.01,
            "batch_size": 32,
            "max_steps": 60,
            "epochs": 100,
            "valid_every": 30,
            "valid_exact": False,
            "log_every": 0,
            "progress": False,
            "threads": 1,
            "seed": 1,
            **(train_options or {}),
        },
    }


@pytest.fixture(scope="session")
def quantile_run(tmp_path_factory):
    """(directory, history [24, 72]) of a run trained with ``levels: [80, 95]`` (24
    validation windows: enough for a finite 95% conformal band, which needs 19)."""
    return train_quantile_run(tmp_path_factory.mktemp("qrun"))


def train_quantile_run(tmp):
    """Train the toy series with ``levels: [80, 95]`` into ``tmp / "run"``; (tmp, history)."""
    hist = toy_series()
    write_wide(tmp / "train.csv", hist)
    cfg = tiny_series_config(str(tmp / "train.csv"), levels=[80, 95])
    (tmp / "q.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["-q", "train", str(tmp / "q.yaml"), "--out", str(tmp / "run")]) == 0
    return tmp, hist
