"""The array API's arguments and arrays checked by name before anything is built or
trained (a negative width or a dropout of 2 had failed deep in torch, or not at all; an
input beyond float32 gave NaN)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from transduce.configcheck import RANGES

# The config's ceiling on widths and layers: an impossible model fails here, in one line,
# and not in the allocator (hidden_dim=10**9), nor builds for hours (depth=10**6).
MAX_SIZE = RANGES["hidden_size"][1]


def count(name: str, value: Any, least: int, most: int | None = None) -> None:
    """A whole number of at least ``least`` (and at most ``most``), refused by name
    otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name}: a whole number >= {least}, got {value!r}")
    if most is not None and value > most:
        raise ValueError(f"{name}: at most {most:,}, got {value!r}")


def positive(name: str, value: Any) -> float:
    """A finite real number > 0, refused by name otherwise (``lr=0.0`` had become the
    default, ``lr=inf`` trained to NaN)."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not real or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: a finite number > 0, got {value!r}")
    return float(value)


def check_args(
    input_dim: Any,
    output_dim: Any,
    output_length: Any,
    input_length: Any,
    hidden_dim: Any,
    embed_dim: Any,
    dropout: Any,
) -> None:
    """The sizes (positive whole numbers; ``hidden_dim``/``embed_dim`` 0 or None: the
    default, at most ``MAX_SIZE``; ``input_length`` None: any) and the dropout (a fraction
    in [0, 1))."""
    count("input_dim", input_dim, 1)
    count("output_dim", output_dim, 1)
    count("output_length", output_length, 1)
    if input_length is not None:
        count("input_length", input_length, 1)
    for name, value in (("hidden_dim", hidden_dim), ("embed_dim", embed_dim)):
        if value is not None and value != 0:
            count(name, value, 1, MAX_SIZE)
    if not hidden_dim and output_dim > MAX_SIZE:
        raise ValueError(
            f"hidden_dim: give one (output_dim={output_dim:,}, its default, is over {MAX_SIZE:,})"
        )
    number = isinstance(dropout, (int, float)) and not isinstance(dropout, bool)
    if not number or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: a fraction in [0, 1), got {dropout!r}")


def check_depth(depth: Any) -> tuple[int, int]:
    """``depth``: one number of layers for both sides, or (encoder, decoder)."""
    pair = tuple(depth) if isinstance(depth, (tuple, list)) else (depth, depth)
    if len(pair) != 2:
        raise ValueError(f"depth: an int or (encoder, decoder) layers, got {depth!r}")
    for layers in pair:
        count("depth", layers, 1, MAX_SIZE)
    return int(pair[0]), int(pair[1])


def check_fit(validation_split: Any, verbose: Any) -> None:
    """``fit``'s fraction held out (in [0, 1)) and its verbosity (0, 1 or 2)."""
    real = isinstance(validation_split, (int, float, np.integer, np.floating))
    if not real or isinstance(validation_split, bool) or not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split: a fraction in [0, 1), got {validation_split!r}")
    if not isinstance(verbose, (int, np.integer)) or verbose not in (0, 1, 2):
        raise ValueError(f"verbose: 0 (silent), 1 or 2 (a line per epoch), got {verbose!r}")


def check_flags(bidirectional: Any, teacher_force: Any, seed: Any) -> None:
    """The two switches are booleans; the seed a whole number in [0, 2**32) (numpy's and
    torch's seeding both take it)."""
    if not isinstance(bidirectional, bool) or not isinstance(teacher_force, bool):
        raise ValueError("bidirectional and teacher_force: True or False")
    count("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"seed: below 2**32, got {seed!r}")


def check_array(name: str, arr: Any, shape: tuple, integer: bool) -> np.ndarray:
    """``arr`` as an array of ``shape`` (None = any size), finite in float32 (what the
    model computes in), of the right dtype kind."""
    a = np.asarray(arr)
    want = "(" + ", ".join("samples" if i == 0 else str(s) for i, s in enumerate(shape)) + ")"
    if a.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, a.shape, strict=True)
    ):
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    if len(a) == 0:
        raise ValueError(f"{name}: no samples (shape {a.shape})")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: sequences of length 0 (shape {a.shape})")
    if integer and a.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer ids of shape {want}, got dtype {a.dtype}")
    if not integer:
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name}: expected real numbers of shape {want}, got dtype {a.dtype}")
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(a.astype(np.float32))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            if np.isfinite(a[where]):  # finite in float64, beyond float32's range
                raise ValueError(
                    f"{name}: {a[where]:g} at index {where} is beyond float32's range "
                    "(3.4e38), in which the model computes"
                )
            raise ValueError(f"{name}: NaN or inf at index {where} (shape {a.shape})")
    return a


def check_ids(name: str, a: np.ndarray, what: str, limit: str, high: int) -> None:
    """Integer ids (``what``: token or class ids) in ``[0, high)``; ``limit`` names
    ``high``."""
    if a.min() < 0 or a.max() >= high:
        raise ValueError(
            f"{name}: {what} must lie in [0, {limit}={high}), got [{a.min()}, {a.max()}] "
            f"(shape {a.shape})"
        )


def check_one_hot(name: str, y: np.ndarray) -> np.ndarray:
    """One-hot rows ``[samples, T, D]`` -> class ids ``[samples, T]``. Any other row (soft
    labels, all zeros, negatives) is refused by its index: it had been argmaxed without a
    word. Soft labels are not taken: the decoder is fed the previous target class, and the
    loop's loss and accuracy count classes."""
    ok = ((y == 0) | (y == 1)).all(-1) & ((y == 1).sum(-1) == 1)
    if not ok.all():
        row = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(
            f"{name}: row {row} is not one-hot (one 1, the rest 0), got "
            f"{np.array2string(y[row], precision=3, threshold=8)}; categorical_crossentropy "
            "takes one-hot rows (class ids: sparse_categorical_crossentropy)"
        )
    return y.argmax(-1).astype(np.int64)


def check_inputs(name: str, X: Any, length: int | None, dim: int, tokens: bool) -> np.ndarray:
    """Token ids ``[samples, length]`` in ``[0, dim)``, or values ``[samples, length, dim]``
    (``length`` None: any)."""
    if not tokens:
        return check_array(name, X, (None, length, dim), False)
    a = check_array(name, X, (None, length), True)
    check_ids(name, a, "token ids", "input_dim", dim)
    return a


def check_targets(name: str, Y: Any, shape: tuple[int, int, int], kind: str) -> np.ndarray:
    """``Y`` for the compiled loss ``kind``: class ids ``[n, T]`` (``sparse``), one-hot
    rows ``[n, T, D]`` (``categorical``; returned as ids) or values ``[n, T, D]``."""
    n, T, D = shape
    if kind == "sparse":
        y = check_array(name, Y, (n, T), True)
        check_ids(name, y, "class ids", "output_dim", D)
        return y.astype(np.int64)
    y = check_array(name, Y, shape, False)
    return check_one_hot(name, y) if kind == "categorical" else y.astype(np.float32)
