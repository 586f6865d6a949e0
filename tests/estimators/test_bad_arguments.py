"""Bad arguments to the array API fail at the call, naming the argument and the problem:
not deep in torch or numpy, not as NaN, not as a silently different result."""

from __future__ import annotations

import re

import numpy as np
import pytest

from transduce.errors import DataError
from transduce.estimators import (
    AttentionSeq2Seq,
    EarlyStopping,
    Estimator,
    SimpleSeq2Seq,
    load_model,
)
from transduce.inference.ensemble import predict_ensemble


def _values(**kwargs):
    """A small real-valued estimator: ``[n, 5, 2]`` -> ``[n, 3, 2]``."""
    args = dict(input_dim=2, input_length=5, hidden_dim=8, output_length=3, output_dim=2)
    return SimpleSeq2Seq(**{**args, **kwargs})


def _arrays(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5, 2)), rng.normal(size=(n, 3, 2))


def _compiled(loss: str = "mse", cls=SimpleSeq2Seq, **kwargs):
    model = cls(input_dim=2, input_length=5, hidden_dim=8, output_length=3, output_dim=2)
    model.compile(loss=loss, **kwargs)
    return model


def test_attention_reads_a_source_that_is_all_padding():
    """Its row attends nowhere (a zero context): finite outputs, and the other rows'
    outputs are what they are without it; evaluate and fit stay finite."""
    rng = np.random.default_rng(0)
    X, Y = rng.integers(1, 5, (8, 7)), rng.integers(0, 4, (8, 3))
    X[0] = 0
    model = AttentionSeq2Seq(
        input_dim=5, input_length=7, hidden_dim=8, output_length=3, output_dim=4
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    probs = model.predict(X)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs[1:], model.predict(X[1:]), rtol=1e-5, atol=1e-7)
    assert np.isfinite(model.evaluate(np.zeros((4, 7), int), Y[:4]))
    history = model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("where", ["X", "Y", "validation_data[0]"])
def test_values_beyond_float32_are_refused_by_name(where):
    X, Y = _arrays()
    big = (Y if where == "Y" else X).copy()
    big[1, 2, 0] = 1e39  # finite in float64, inf in float32
    args = {
        "X": (big, Y, None),
        "Y": (X, big, None),
        "validation_data[0]": (X, Y, (big, Y)),
    }[where]
    with pytest.raises(ValueError, match=re.escape(f"{where}: 1e+39 at index (1, 2, 0) is beyond")):
        _compiled().fit(*args[:2], validation_data=args[2], verbose=0)


def test_predict_refuses_values_beyond_float32():
    X, _ = _arrays()
    X[3, 0, 1] = -1e39
    with pytest.raises(ValueError, match=r"X: -1e\+39 at index \(3, 0, 1\)"):
        _compiled().predict(X)


def test_predict_ensemble_refuses_members_of_different_output_kinds():
    X, _ = _arrays()
    values, classes = _compiled("mse"), _compiled("sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"member 1 \(SimpleSeq2Seq, loss sparse_categorical"):
        predict_ensemble([values, classes], X)
    assert predict_ensemble([values, _compiled("mae")], X).shape == (8, 3, 2)


def test_predict_ensemble_of_no_member_asks_for_one():
    with pytest.raises(ValueError, match="give at least one member"):
        predict_ensemble([], np.zeros((2, 5, 2)))


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (np.array([0.3, 0.7]), r"row \(2, 1\) is not one-hot"),  # soft label
        (np.array([0.0, 0.0]), r"row \(2, 1\) is not one-hot"),
        (np.array([-1.0, 2.0]), r"row \(2, 1\) is not one-hot"),
        (np.array([1.0, 1.0]), r"row \(2, 1\) is not one-hot"),
    ],
    ids=["soft", "zeros", "negative", "two-hot"],
)
def test_categorical_targets_must_be_one_hot(row, match):
    X, _ = _arrays()
    Y = np.eye(2)[np.zeros((8, 3), int)]
    model = _compiled("categorical_crossentropy")
    model.fit(X, Y, verbose=0)  # one-hot rows are taken
    Y[2, 1] = row
    with pytest.raises(ValueError, match="Y: " + match):
        model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="Y: " + match):
        model.evaluate(X, Y)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.0},
        {"lr": float("nan")},
        {"lr": -1},
        {"lr": float("inf")},
        {"lr": "x"},
        {"clip_norm": -1},
        {"clip_norm": float("nan")},
        {"clip_norm": "x"},
    ],
)
def test_compile_refuses_bad_rates_and_clip_norms(kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=f"{name}: a finite number > 0"):
        _values().compile(loss="mse", **kwargs)


def test_compile_lr_zero_is_refused_not_the_default():
    model = _values()
    with pytest.raises(ValueError, match=r"lr: a finite number > 0, got 0\.0"):
        model.compile(loss="mse", optimizer="sgd", lr=0.0)  # it became sgd's 1e-2
    model.compile(loss="mse", optimizer="sgd", lr=None, clip_norm=None)
    assert model.compiled["lr"] == 1e-2 and model.compiled["clip_norm"] is None
    model.compile(loss="mse", clip_norm=0)  # no clipping, as train.clip_norm: 0 is
    assert model.compiled["clip_norm"] is None
    model.compile(loss="mse", lr=3e-4)
    assert model.compiled["lr"] == 3e-4


@pytest.mark.parametrize("X", [np.zeros((2, 0, 5)), np.zeros((2, 0), int)], ids=["values", "ids"])
def test_a_free_length_estimator_refuses_empty_sequences(X):
    model = AttentionSeq2Seq(
        input_dim=5, input_length=None, hidden_dim=8, output_length=3, output_dim=2
    )
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=r"X: sequences of length 0 \(shape \(2, 0"):
        model.predict(X)


def test_load_on_a_class_refuses_another_class(tmp_path):
    X, _ = _arrays()
    model = _compiled(cls=AttentionSeq2Seq)
    model.predict(X)
    model.save(tmp_path / "m")
    with pytest.raises(DataError, match="a saved AttentionSeq2Seq, not a SimpleSeq2Seq"):
        SimpleSeq2Seq.load(tmp_path / "m")
    for load in (AttentionSeq2Seq.load, Estimator.load, load_model):
        assert type(load(tmp_path / "m")) is AttentionSeq2Seq


def test_save_over_a_file_says_so(tmp_path):
    X, _ = _arrays()
    model = _compiled()
    model.predict(X)
    (tmp_path / "f").write_text("")
    with pytest.raises(FileExistsError, match=r"save: .*f is a file; save writes a folder"):
        model.save(tmp_path / "f")


def test_save_into_a_folder_of_other_files_is_refused_and_a_resave_is_not(tmp_path):
    """save wrote into any folder: into a training run it replaced model.safetensors
    (the run no longer loaded), into a home folder any file of that name."""
    X, _ = _arrays()
    model = _compiled()
    model.predict(X)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {}\n")
    (run / "model.safetensors").write_text("the run's weights")
    with pytest.raises(FileExistsError, match=r"holds other files \(config.yaml"):
        model.save(run)
    assert (run / "model.safetensors").read_text() == "the run's weights"
    model.save(tmp_path / "m")
    (tmp_path / "m" / "notes.txt").write_text("mine")
    model.save(tmp_path / "m")  # an earlier save: replaced, the user's file kept
    assert (tmp_path / "m" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"validation_split": "0.1"}, "validation_split: a fraction in"),
        ({"verbose": "x"}, "verbose: 0"),
        ({"verbose": 3}, "verbose: 0"),
        ({"callbacks": 5}, "callbacks: a list of"),
        ({"callbacks": [5]}, "callbacks: a list of"),
    ],
)
def test_fit_refuses_bad_options_by_name(kwargs, match):
    X, Y = _arrays()
    with pytest.raises(ValueError, match=match):
        _compiled().fit(X, Y, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": "ab"}, "depth: a whole number"),
        ({"depth": 2.5}, "depth: a whole number"),
        ({"depth": 10**6}, "depth: at most 16,384"),
        ({"hidden_dim": 10**9}, "hidden_dim: at most 16,384"),
        ({"embed_dim": 10**9}, "embed_dim: at most 16,384"),
        ({"hidden_dim": None, "output_dim": 10**6}, "hidden_dim: give one"),
    ],
)
def test_sizes_and_depths_are_checked_and_capped(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _values(**kwargs)


def test_metrics_may_be_one_name():
    X, Y = _arrays()
    model = _compiled(metrics="mae")
    assert model.compiled["metrics"] == ["mae"]
    assert set(model.fit(X, Y, verbose=0).history) == {"loss", "mae"}
    with pytest.raises(ValueError, match="metrics: a list of names"):
        model.compile(loss="mse", metrics=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patience": -1}, "patience: a whole number >= 0"),
        ({"patience": 1.5}, "patience: a whole number >= 0"),
        ({"min_delta": float("nan")}, "min_delta: a finite number"),
        ({"monitor": 3}, "monitor: the name of a log entry"),
    ],
)
def test_early_stopping_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)
