"""Rolling windows over real-valued series, per-series scaling, calendar features, and the
in-memory arrays and batches a value model trains on.

The readers that produce the :class:`~transduce.data.series.SeriesSet` these windows are
cut from live in :mod:`transduce.data.series`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:  # torch only for the training batches below: forecasting windows need none
    import torch


def phase_features(positions: np.ndarray, period: int) -> np.ndarray:
    """Position-in-cycle as ``[..., 2]`` (sin, cos) of ``2 pi (position mod period) / period``."""
    angle = 2 * np.pi * (np.asarray(positions) % period) / period
    return np.stack([np.sin(angle), np.cos(angle)], -1)


@dataclass(frozen=True)
class WindowSpec:
    """How series become model inputs.

    ``scaling``: ``log``: log(y / level); ``level``: y / level; ``none``: raw values. The
    level is the mean of the last ``period`` inputs of each window (the last season), so a
    window's scale never sees its own targets. ``calendar`` adds (sin, cos) of the phase
    ``(t - origin) mod period``, with ``origin`` the end of the series' training part: the
    test horizon starts right after it (M4 has no timestamps). ``seasonal`` gives the
    decoder, for each target step, two known values of the same phase: the last season's
    (the seasonal-naive forecast) and the mean over every season in the lookback.
    """

    lookback: int
    horizon: int
    period: int = 24
    scaling: str = "log"
    calendar: bool = True
    seasonal: bool = False
    covariates: int = 0  # future-known covariates: encoder and decoder inputs
    past_covariates: int = 0  # observed up to the origin only: encoder inputs

    @property
    def features(self) -> int:
        """Encoder input features per step: the scaled value (+ phase sin, cos), covariates."""
        return 1 + (2 if self.calendar else 0) + self.covariates + self.past_covariates

    @property
    def exog_features(self) -> int:
        """Decoder features per target step besides the previous value."""
        return (2 if self.calendar else 0) + (2 if self.seasonal else 0) + self.covariates


def _level(inputs: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``inputs [N, L]`` -> level ``[N]`` (1 with ``scaling: none``)."""
    if spec.scaling == "none":
        return np.ones(len(inputs))
    level = np.abs(inputs[:, -spec.period :]).mean(1)
    return np.where(level > 0, level, 1.0)


def scale(values: np.ndarray, level: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``values [N, T]`` in the scaled space of rows with ``level [N]``."""
    ratio = values / level[:, None]
    if spec.scaling == "log":
        return np.log(np.maximum(ratio, 1e-6))
    return ratio


def unscale(values: np.ndarray, level: np.ndarray, spec: WindowSpec) -> np.ndarray:
    if spec.scaling == "log":
        values = np.exp(values)
    return values * level[:, None]


def left_pad(x: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` values; a shorter series is padded with its first value."""
    x = np.asarray(x, float)
    return x[-length:] if len(x) >= length else np.r_[np.full(length - len(x), x[0]), x]


class WindowArrays(NamedTuple):
    """Model-ready windows: ``src [N, L, F]``, ``start [N, 1]``, ``exog [N, H, C]``,
    ``target [N, H, 1]`` (scaled; NaN-free) and the ``level [N]`` that undoes the scaling."""

    src: np.ndarray
    start: np.ndarray
    exog: np.ndarray
    target: np.ndarray | None
    level: np.ndarray


def make_windows(
    histories: np.ndarray,
    origins: np.ndarray,
    spec: WindowSpec,
    targets: np.ndarray | None,
    cov_past: np.ndarray | None = None,
    cov_future: np.ndarray | None = None,
) -> WindowArrays:
    """Windows from ``histories [N, L]`` whose last value sits at position ``origins[i] - 1``
    relative to the series' training end (``origin = 0``: the forecast origin itself).
    Covariates enter as given (unscaled): ``cov_past [N, L, Cf + Cp]`` (future-known
    columns first) beside the encoder's values, ``cov_future [N, H, Cf]`` beside the
    decoder's known features."""
    level = _level(histories, spec)
    src_vals = scale(histories, level, spec)[:, :, None]  # [N, L, 1]
    steps = np.arange(-spec.lookback, spec.horizon)[None, :] + origins[:, None]  # [N, L + H]
    src, exog = src_vals, np.zeros((len(histories), spec.horizon, 0))
    if spec.calendar:
        cal = phase_features(steps, spec.period)  # [N, L + H, 2]
        src = np.concatenate([src_vals, cal[:, : spec.lookback]], -1)
        exog = cal[:, spec.lookback :]
    if spec.seasonal:
        exog = np.concatenate([exog, _seasonal(src_vals[:, :, 0], spec)], -1)
    if spec.covariates + spec.past_covariates:
        src = np.concatenate([src, cov_past], -1)
        exog = np.concatenate([exog, cov_future[:, :, : spec.covariates]], -1)
    tgt = None if targets is None else scale(targets, level, spec)[:, :, None]
    f32 = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
    return WindowArrays(f32(src), f32(src_vals[:, -1]), f32(exog), f32(tgt), level)


def _seasonal(values: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``values [N, L]`` (scaled) -> ``[N, H, 2]``: for target step h, the value one season
    before it in the last season, and the mean over all full seasons of the lookback."""
    m, L = spec.period, values.shape[1]
    phase = np.arange(spec.horizon) % m  # [H]
    seasons = values[:, L - (L // m) * m :].reshape(len(values), L // m, m)  # [N, K, m]
    last, mean = seasons[:, -1, phase], seasons.mean(1)[:, phase]  # [N, H] each
    return np.stack([last, mean], -1)


def training_windows(
    series: list[np.ndarray],
    spec: WindowSpec,
    stride: int,
    holdout: int,
    covariates: list[np.ndarray] | None = None,
) -> tuple[WindowArrays, WindowArrays]:
    """Rolling windows ending every ``stride`` steps, back from the last window whose
    target ends ``holdout`` values before each series' end; and the held-out windows (the
    last ``holdout`` values of each series as target, or none with ``holdout=0``).
    ``covariates``: ``[n_i, C]`` per series, aligned with its values."""
    L, H = spec.lookback, spec.horizon
    parts: dict[str, list] = {
        k: [] for k in ("h", "t", "o", "cp", "cf", "vh", "vt", "vo", "vcp", "vcf")
    }
    for i, x in enumerate(series):
        n, cov = len(x), None if covariates is None else covariates[i]
        ends = list(range(n - holdout, L + H - 1, -stride))  # exclusive ends of targets
        kinds = [("", end) for end in ends]
        if holdout and n >= L + holdout:
            kinds.append(("v", n - holdout + H))
        for pre, end in kinds:
            parts[pre + "h"].append(x[end - H - L : end - H])
            parts[pre + "t"].append(x[end - H : end])
            parts[pre + "o"].append(end - H - n)
            if cov is not None:
                parts[pre + "cp"].append(cov[end - H - L : end - H])
                parts[pre + "cf"].append(cov[end - H : end])
    if not parts["h"]:
        raise ValueError(f"no series is long enough for lookback {L} + horizon {H}")

    def windows(pre: str) -> WindowArrays:
        cov = [np.array(parts[pre + k]) if parts[pre + k] else None for k in ("cp", "cf")]
        return make_windows(
            np.array(parts[pre + "h"]),
            np.array(parts[pre + "o"]),
            spec,
            np.array(parts[pre + "t"]),
            *cov,
        )

    train = windows("")
    return (train, train) if not parts["vh"] else (train, windows("v"))


# ---------------------------------------------------------------------- batches


class ValueBatch(NamedTuple):
    """``src [B, S, F]`` (or ids ``[B, S]``), ``tgt_in [B, T, D + C]`` (previous value and
    exogenous features; ids ``[B, T]``), ``tgt_out [B, T, D]`` (ids ``[B, T]``), ``index [B]``."""

    src: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    index: torch.Tensor

    @property
    def src_mask(self) -> torch.Tensor:  # [B, S]; ids use 0 as padding (mask_zero)
        import torch

        if self.src.dim() == 2:
            return self.src != 0
        return torch.ones(self.src.shape[:2], dtype=torch.bool, device=self.src.device)

    @property
    def ntokens(self) -> int:
        return self.tgt_out.numel()

    def to(self, device: torch.device | str) -> ValueBatch:
        return ValueBatch(*(t.to(device) for t in self))


class ArrayData:
    """Fixed-shape examples for the trainer: ``src``, the first decoder input ``start``,
    exogenous decoder features ``exog`` and targets ``tgt``; ``tgt_in`` is built per batch
    as [start, tgt[:-1]] (teacher forcing) with ``exog`` appended."""

    def __init__(self, src, start, exog, tgt):
        import torch

        self.src = torch.as_tensor(src)
        self.start = torch.as_tensor(start)  # [N, D] values, or [N] ids
        self.exog = None if exog is None or exog.shape[-1] == 0 else torch.as_tensor(exog)
        self.tgt = None if tgt is None else torch.as_tensor(tgt)

    @classmethod
    def from_windows(cls, w: WindowArrays) -> ArrayData:
        return cls(w.src, w.start, w.exog, w.target)

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, idx: np.ndarray) -> ValueBatch:
        import torch

        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        tgt = self.tgt[idx_t]
        prev = torch.cat([self.start[idx_t].unsqueeze(1), tgt[:, :-1]], 1)  # shift right
        if self.exog is not None:
            prev = torch.cat([prev, self.exog[idx_t]], -1)
        return ValueBatch(self.src[idx_t], prev, tgt, idx_t)

    def batch_order(
        self, batch_size: int, seed: int, epoch: int, *, rank: int = 0, world: int = 1
    ) -> list[np.ndarray]:
        """Shuffled batches, a pure function of (seed, epoch) for exact resume."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        batches = [order[i : i + batch_size] for i in range(0, len(self), batch_size)]
        usable = len(batches) - len(batches) % world if world > 1 else len(batches)
        return batches[rank:usable:world]

    def iter_batches(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.batch(np.arange(i, min(i + batch_size, len(self))))
