"""The Keras-style array API: every class learns a toy series, shapes, save/load, errors."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.estimators import AttentionSeq2Seq, Seq2Seq, SimpleSeq2Seq, load_model

L, T = 12, 4


def _waves(n: int, seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Sine or sawtooth windows, random phase and amplitude: ``[n, L, 1]``, ``[n, T, 1]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(L + T)[None, :] / 8 + rng.uniform(0, 1, (n, 1))
    amp = rng.uniform(0.5, 1.5, (n, 1))
    x = amp * (np.sin(2 * np.pi * t) if kind == "sine" else 2 * (t % 1) - 1)
    return x[:, :L, None].astype(np.float32), x[:, L:, None].astype(np.float32)


def _fit(model, kind: str = "sine", epochs: int = 12):
    X, Y = _waves(384, 0, kind)
    model.compile(loss="mse", optimizer="adam", lr=0.01)
    history = model.fit(X, Y, epochs=epochs, batch_size=32, validation_split=0.125)
    return model, history


@pytest.mark.parametrize(
    ("cls", "kwargs", "kind"),
    [
        (SimpleSeq2Seq, {}, "sine"),
        (Seq2Seq, {}, "sawtooth"),
        (Seq2Seq, {"peek": True}, "sine"),
        (AttentionSeq2Seq, {"cell": "gru"}, "sawtooth"),
    ],
    ids=["simple", "seq2seq", "peek", "attention"],
)
def test_each_model_beats_the_naive_forecast(cls, kwargs, kind):
    model = cls(input_dim=1, input_length=L, hidden_dim=16, output_length=T, output_dim=1, **kwargs)
    model, history = _fit(model, kind)
    assert len(history.history["loss"]) == len(history.history["val_loss"]) == 12
    X, Y = _waves(200, 1, kind)
    naive = float(np.mean((Y - X[:, -1:, :]) ** 2))
    assert model.predict(X).shape == (200, T, 1)
    assert model.evaluate(X, Y) < 0.25 * naive


def test_depth_tuple_builds_encoder_and_decoder_layers():
    model = Seq2Seq(
        batch_input_shape=(16, 7, 5),
        hidden_dim=10,
        output_length=8,
        output_dim=20,
        depth=(2, 3),
        peek=True,
    )
    model.compile(loss="mse", optimizer="rmsprop")
    net = model.build()
    assert net.encoder.rnn.num_layers == 2 and net.decoder.rnn.num_layers == 3
    assert model.predict(np.zeros((3, 7, 5), np.float32)).shape == (3, 8, 20)
    attn = AttentionSeq2Seq(
        input_dim=5, input_length=7, hidden_dim=10, output_length=8, output_dim=20, depth=4
    )
    attn.compile(loss="mse", optimizer="rmsprop")
    assert attn.build().encoder.rnn.num_layers == 4 and attn.build().encoder.rnn.bidirectional


def test_save_load_gives_identical_predictions(tmp_path):
    model = AttentionSeq2Seq(input_dim=1, hidden_dim=8, output_length=T, output_dim=1)
    model, _ = _fit(model, epochs=1)
    X, _ = _waves(20, 2, "sine")
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_array_equal(model.predict(X), again.predict(X))
    assert not list((tmp_path / "m").glob("*.pt")) and not list((tmp_path / "m").glob("*.pkl"))


def test_token_arrays_with_crossentropy_learn_to_reverse():
    rng = np.random.default_rng(0)
    X = rng.integers(1, 6, (512, 5))
    Y = X[:, ::-1].copy()
    model = AttentionSeq2Seq(
        input_dim=6, input_length=5, hidden_dim=32, output_length=5, output_dim=6, cell="gru"
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", lr=0.01)
    model.fit(X, Y, epochs=15, batch_size=32)
    Xt = rng.integers(1, 6, (100, 5))
    probs = model.predict(Xt)
    assert probs.shape == (100, 5, 6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert (probs.argmax(-1) == Xt[:, ::-1]).mean() > 0.9
    one_hot = np.eye(6)[Y]  # categorical targets give the same loss path
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    assert np.isfinite(model.fit(X[:64], one_hot[:64], epochs=1).history["loss"][0])


def test_wrong_inputs_raise_errors_naming_the_argument():
    model = SimpleSeq2Seq(input_dim=3, input_length=6, hidden_dim=4, output_length=2, output_dim=1)
    model.compile(loss="mse", optimizer="adam")
    X, Y = np.zeros((8, 6, 3), np.float32), np.zeros((8, 2, 1), np.float32)
    with pytest.raises(ValueError, match=r"X: expected shape \(samples, 6, 3\), got \(8, 6, 2\)"):
        model.fit(X[:, :, :2], Y)
    with pytest.raises(ValueError, match=r"Y: expected shape \(samples, 2, 1\), got \(8, 3, 1\)"):
        model.fit(X, np.zeros((8, 3, 1)))
    bad = X.copy()
    bad[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"X: NaN or inf at index \(2, 1, 0\)"):
        model.fit(bad, Y)
    with pytest.raises(ValueError, match=r"Y: NaN or inf"):
        model.fit(X, np.full((8, 2, 1), np.inf))
    with pytest.raises(ValueError, match=r"X: expected real numbers .* got dtype <U1"):
        model.predict(np.full((8, 6, 3), "a"))
    with pytest.raises(ValueError, match=r"validation_data\[1\]: expected shape"):
        model.fit(X, Y, validation_data=(X, Y[:, :1]))
    with pytest.raises(ValueError, match="depth"):
        Seq2Seq(input_dim=3, output_length=2, output_dim=1, depth=(0, 2))
    with pytest.raises(ValueError, match="loss"):
        model.compile(loss="hinge")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"hidden_dim": -3}, "hidden_dim"),
        ({"hidden_dim": 8.5}, "hidden_dim"),
        ({"output_length": 0}, "output_length"),
        ({"output_dim": 0}, "output_dim"),
        ({"input_dim": "5"}, "input_dim"),
        ({"embed_dim": -1}, "embed_dim"),
        ({"dropout": 2.0}, "dropout"),
        ({"bidirectional": "no"}, "bidirectional"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**70}, "seed"),
    ],
)
def test_bad_constructor_arguments_are_refused_by_name(kwargs, name):
    args = {"input_dim": 3, "input_length": 6, "output_length": 2, "output_dim": 1, **kwargs}
    with pytest.raises(ValueError, match=name):
        SimpleSeq2Seq(**args)


def test_fit_and_predict_refuse_batch_sizes_epochs_and_empty_splits_by_name():
    model = SimpleSeq2Seq(input_dim=3, input_length=6, hidden_dim=4, output_length=2, output_dim=1)
    model.compile(loss="mse", optimizer="adam")
    X, Y = np.zeros((8, 6, 3), np.float32), np.zeros((8, 2, 1), np.float32)
    for kwargs in ({"batch_size": -1}, {"batch_size": 0}, {"batch_size": 2.5}):
        with pytest.raises(ValueError, match="batch_size"):
            model.fit(X, Y, **kwargs)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, Y, epochs=-1)
    with pytest.raises(ValueError, match="leaves none to train on"):
        model.fit(X[:1], Y[:1], validation_split=0.5)
    with pytest.raises(ValueError, match="validation_data: a pair"):
        model.fit(X, Y, validation_data=(X,))
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(X, batch_size=0)
