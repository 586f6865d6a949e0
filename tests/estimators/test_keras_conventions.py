"""The array API as a Keras user expects it: one line per epoch, summary/count_params,
compiled metrics in the history, callbacks, and a second fit that continues the optimizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transduce.estimators import (
    AttentionSeq2Seq,
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    Seq2Seq,
    load_model,
)


def _data(n: int = 96, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6, 2)).astype(np.float32)
    Y = np.repeat(X.mean(1, keepdims=True), 3, 1)[..., :1]  # [n, 3, 1]
    return X, Y


def _model(**kwargs):
    return Seq2Seq(
        input_dim=2,
        input_length=6,
        hidden_dim=8,
        output_length=3,
        output_dim=1,
        teacher_force=True,
        **kwargs,
    )


def test_fit_prints_one_keras_line_per_epoch(capsys):
    X, Y = _data()
    model = _model()
    model.compile(loss="mse", optimizer="adam", metrics=["mae"])
    model.fit(X, Y, epochs=2, batch_size=32, validation_split=0.25)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/2", "Epoch 2/2"]
    for line in lines:
        assert [p.split(":")[0] for p in line.split(" - ")[2:]] == [
            "loss",
            "mae",
            "val_loss",
            "val_mae",
        ]
    model.fit(X, Y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_summary_and_count_params_agree_with_the_network(capsys):
    model = AttentionSeq2Seq(
        input_dim=2, input_length=6, hidden_dim=8, output_length=3, output_dim=1
    )
    model.compile(loss="mse")
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    total = sum(p.numel() for p in model.net.parameters())
    assert model.count_params() == total > 0
    assert f"Total params{total:>,}".replace(" ", "") in text.replace(" ", "")
    assert "encoder (" in text and "decoder (" in text


def test_value_metrics_are_in_the_history_and_match_evaluate():
    X, Y = _data()
    model = _model()
    model.compile(loss="mse", optimizer="adam", metrics=["mae", "mse"])
    hist = model.fit(
        X[:64], Y[:64], epochs=3, batch_size=16, validation_data=(X[64:], Y[64:]), verbose=0
    )
    assert set(hist.history) == {"loss", "mae", "mse", "val_loss", "val_mae", "val_mse"}
    assert hist.epoch == [0, 1, 2] and all(len(v) == 3 for v in hist.history.values())
    loss, mae, mse = model.evaluate(X[64:], Y[64:])
    # Validation rolls out like predict, so the last epoch's figures are evaluate's.
    assert hist.history["val_mae"][-1] == pytest.approx(mae, rel=1e-4)
    assert hist.history["val_mse"][-1] == pytest.approx(mse, rel=1e-4)
    assert hist.history["val_loss"][-1] == pytest.approx(loss, rel=1e-4)


def test_accuracy_for_classes_and_metric_errors():
    rng = np.random.default_rng(1)
    X = rng.integers(1, 5, (64, 4))
    model = AttentionSeq2Seq(
        input_dim=5, input_length=4, hidden_dim=8, output_length=4, output_dim=5
    )
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    hist = model.fit(X, X[:, ::-1].copy(), epochs=2, validation_split=0.25, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(0.0 <= a <= 1.0 for a in hist.history["accuracy"] + hist.history["val_accuracy"])
    _, acc = model.evaluate(X, X[:, ::-1].copy())
    assert 0.0 <= acc <= 1.0
    with pytest.raises(ValueError, match="'mae' is not available for class outputs"):
        model.compile(loss="sparse_categorical_crossentropy", metrics=["mae"])
    with pytest.raises(ValueError, match="'accuracy' is not available for real-valued"):
        _model().compile(loss="mse", metrics=["accuracy"])


def test_early_stopping_stops_and_restores_the_best_weights():
    X, Y = _data()
    seen = []

    class Weights(Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append({k: v.clone() for k, v in self.model.net.state_dict().items()})

    model = _model()
    model.compile(loss="mse", optimizer="adam")
    # min_delta so large that only the first epoch counts as an improvement
    stop = EarlyStopping(monitor="loss", patience=2, min_delta=1e9, restore_best_weights=True)
    hist = model.fit(X, Y, epochs=20, callbacks=[stop, Weights()], verbose=0)
    assert len(hist.history["loss"]) == 3 and stop.stopped_epoch == 2 and stop.best_epoch == 0
    final = model.net.state_dict()
    assert all(torch.equal(final[k], seen[0][k]) for k in final)
    assert not all(torch.equal(final[k], seen[-1][k]) for k in final)
    with pytest.raises(ValueError, match="monitor='val_loss' is not in the epoch logs"):
        model.fit(X, Y, epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_model_checkpoint_saves_each_epoch_or_the_best(tmp_path):
    X, Y = _data()
    model = _model()
    model.compile(loss="mse", optimizer="adam")
    every = ModelCheckpoint(tmp_path / "ep{epoch:02d}", monitor="loss")
    best = ModelCheckpoint(tmp_path / "best", monitor="val_loss", save_best_only=True)
    hist = model.fit(X, Y, epochs=3, validation_split=0.25, callbacks=[every, best], verbose=0)
    assert [p[-4:] for p in every.saved] == ["ep01", "ep02", "ep03"]
    np.testing.assert_array_equal(load_model(tmp_path / "ep03").predict(X), model.predict(X))
    improvements = sum(
        v < min(hist.history["val_loss"][:i], default=np.inf)
        for i, v in enumerate(hist.history["val_loss"])
    )
    assert len(best.saved) == improvements >= 1


def test_a_second_fit_continues_the_optimizer():
    X, Y = _data(64)

    def run(splits: list[int], fresh: bool = False):
        model = _model(seed=3)
        model.compile(loss="mse", optimizer="adam", lr=0.01)
        for epochs in splits:
            if fresh:
                model.optimizer_state = None
            model.fit(X, Y, epochs=epochs, batch_size=64, verbose=0)  # one batch per epoch
        return model

    once, twice = run([3]), run([1, 2])
    assert twice.optimizer_state["state"][0]["step"] == 3
    for a, b in zip(once.net.parameters(), twice.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    restarted = run([1, 2], fresh=True)  # what the test guards against: a new Adam each fit
    assert any(
        not torch.allclose(a, b, atol=1e-6)
        for a, b in zip(once.net.parameters(), restarted.net.parameters(), strict=True)
    )
