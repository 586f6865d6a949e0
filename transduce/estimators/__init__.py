"""The seeds' Keras-style array API on the project's models (Sutskever / Cho / Bahdanau
presets), trained by the project's loop (a loop callback speaks Keras to ``fit``).

    model = AttentionSeq2Seq(input_dim=5, input_length=7, hidden_dim=10, output_length=8,
                             output_dim=20, depth=4)
    model.compile(loss="mse", optimizer="rmsprop", metrics=["mae"])
    model.summary()
    history = model.fit(X, Y, epochs=10, batch_size=32, validation_split=0.1,
                        callbacks=[EarlyStopping(patience=3)])
    Y_hat = model.predict(X)            # [samples, output_length, output_dim]

Inputs are real arrays ``[samples, input_length, input_dim]`` or integer token ids
``[samples, input_length]`` (0 = padding, masked). Outputs are real
``[samples, output_length, output_dim]`` (``mse`` / ``mae`` / ``huber``), or classes of
``output_dim`` (``categorical_crossentropy`` on one-hot ``[samples, T, output_dim]``,
``sparse_categorical_crossentropy`` on ids ``[samples, T]``; ``predict`` returns the
probabilities). Prediction is an autoregressive roll-out: the previous output is fed back.

``Seq2Seq`` here is the estimator (the seeds' name); the torch module is
:class:`transduce.Seq2SeqModel`.
"""

from transduce.estimators.base import Estimator
from transduce.estimators.callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from transduce.estimators.models import AttentionSeq2Seq, Seq2Seq, SimpleSeq2Seq, load_model

__all__ = [
    "AttentionSeq2Seq",
    "Callback",
    "EarlyStopping",
    "Estimator",
    "History",
    "ModelCheckpoint",
    "Seq2Seq",
    "SimpleSeq2Seq",
    "load_model",
]
