"""The seeds' Keras-style array API on the project's models (Sutskever / Cho / Bahdanau
presets), trained by the project's Trainer.

    model = AttentionSeq2Seq(input_dim=5, input_length=7, hidden_dim=10, output_length=8,
                             output_dim=20, depth=4)
    model.compile(loss="mse", optimizer="rmsprop")
    history = model.fit(X, Y, epochs=10, batch_size=32, validation_split=0.1)
    Y_hat = model.predict(X)            # [samples, output_length, output_dim]

Inputs are real arrays ``[samples, input_length, input_dim]`` or integer token ids
``[samples, input_length]`` (0 = padding, masked). Outputs are real
``[samples, output_length, output_dim]`` (``mse`` / ``mae`` / ``huber``), or classes of
``output_dim`` (``categorical_crossentropy`` on one-hot ``[samples, T, output_dim]``,
``sparse_categorical_crossentropy`` on ids ``[samples, T]``; ``predict`` returns the
probabilities). Prediction is an autoregressive roll-out: the previous output is fed back.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transduce import checkpoint as ckpt
from transduce.config import Config, DecoderConfig, EncoderConfig, ModelConfig, TrainConfig
from transduce.data.series import ArrayData
from transduce.forecasting.trainer import ValueTrainer, regression_loss
from transduce.nn.embed import TokenEmbedding, ValueEmbedding
from transduce.nn.heads import VocabHead
from transduce.nn.models import build_model, build_value_model
from transduce.search import rollout

LOSSES = {
    "mse": "mse", "mean_squared_error": "mse", "mae": "mae", "mean_absolute_error": "mae",
    "huber": "huber", "categorical_crossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse",
}  # fmt: skip
DEFAULT_LR = {"adam": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2}


@dataclass
class History:
    """What ``fit`` returns: ``history["loss"]`` (and ``["val_loss"]``) per epoch."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)


class _QuietTrainer(ValueTrainer):
    """Keras' ``verbose=0``: the validation lines go to metrics.jsonl and history only."""

    quiet = True

    def _log(self, record: dict[str, Any]) -> None:
        if not self.quiet:
            return super()._log(record)
        record = {"step": self.step, "epoch": self.epoch, **record}
        if record["split"] == "valid":
            self.history.append(record)


def _check(name: str, arr: Any, shape: tuple, integer: bool) -> np.ndarray:
    """``arr`` as an array of ``shape`` (None = any size), finite, of the right dtype kind."""
    a = np.asarray(arr)
    want = "(" + ", ".join("samples" if i == 0 else str(s) for i, s in enumerate(shape)) + ")"
    if a.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, a.shape, strict=True)
    ):
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    if len(a) == 0:
        raise ValueError(f"{name}: no samples (shape {a.shape})")
    if integer and a.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer ids of shape {want}, got dtype {a.dtype}")
    if not integer:
        if a.dtype.kind not in "fiub":
            raise ValueError(f"{name}: expected real numbers of shape {want}, got dtype {a.dtype}")
        bad = ~np.isfinite(a.astype(np.float64))
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name}: NaN or inf at index {where} (shape {a.shape})")
    return a


class _Seq2SeqEstimator:
    """Shared by the three classes; ``_preset`` picks the decoder variant."""

    _preset = "sutskever"

    def __init__(
        self,
        output_dim: int,
        output_length: int,
        hidden_dim: int | None = None,
        input_dim: int | None = None,
        input_length: int | None = None,
        input_shape: tuple | None = None,
        batch_input_shape: tuple | None = None,
        depth: int | tuple[int, int] = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
        bidirectional: bool = False,
        teacher_force: bool = True,
        embed_dim: int | None = None,
        seed: int = 0,
    ):
        if batch_input_shape is not None:
            input_shape = tuple(batch_input_shape)[1:]
        if input_shape is not None:
            input_length, input_dim = (*tuple(input_shape), None)[:2]
        if not input_dim or input_dim < 1:
            raise ValueError(f"input_dim: a positive integer is needed, got {input_dim!r}")
        depth = (depth, depth) if isinstance(depth, int) else tuple(depth)
        if len(depth) != 2 or min(depth) < 1:
            raise ValueError(f"depth: an int or (encoder, decoder) layers >= 1, got {depth!r}")
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell: 'lstm' or 'gru', got {cell!r}")
        self.args = dict(
            output_dim=output_dim, output_length=output_length,
            hidden_dim=hidden_dim or output_dim, input_dim=input_dim, input_length=input_length,
            depth=list(depth), cell=cell, dropout=dropout, bidirectional=bidirectional,
            teacher_force=teacher_force, embed_dim=embed_dim, seed=seed,
        )  # fmt: skip
        self.compiled: dict[str, Any] | None = None
        self.net: torch.nn.Module | None = None
        self.tokens_in: bool | None = None

    # ------------------------------------------------------------------ model

    def model_config(self) -> ModelConfig:
        a = self.args
        hidden, embed = a["hidden_dim"], a["embed_dim"] or a["hidden_dim"]
        enc, dec = a["depth"]
        return ModelConfig(
            preset=self._preset, cell=a["cell"],
            encoder=EncoderConfig(embed, hidden, enc, a["bidirectional"], a["dropout"]),
            decoder=DecoderConfig(embed, hidden, dec, a["dropout"]),
        )  # fmt: skip

    @property
    def tokens_out(self) -> bool:
        return self.compiled is not None and self.compiled["loss"] in ("categorical", "sparse")

    def compile(self, loss: str = "mse", optimizer: str = "rmsprop", lr: float | None = None,
                clip_norm: float | None = 1.0) -> None:  # fmt: skip
        """Choose the loss (``mse``, ``mae``, ``huber``, ``categorical_crossentropy``,
        ``sparse_categorical_crossentropy``) and the optimizer (``rmsprop``, ``adam``, ``sgd``)."""
        if loss not in LOSSES:
            raise ValueError(f"loss: one of {', '.join(LOSSES)}; got {loss!r}")
        if optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer: one of {', '.join(DEFAULT_LR)}; got {optimizer!r}")
        self.compiled = dict(loss=LOSSES[loss], loss_name=loss, optimizer=optimizer,
                             lr=lr or DEFAULT_LR[optimizer], clip_norm=clip_norm)  # fmt: skip
        self.net = None  # the output kind may have changed

    def build(self, tokens_in: bool = False) -> torch.nn.Module:
        """Build the network (done by the first ``fit``/``predict`` from the input's dtype)."""
        if self.compiled is None:
            raise RuntimeError("call compile(loss=..., optimizer=...) first")
        torch.manual_seed(self.args["seed"])
        cfg, a = self.model_config(), self.args
        embed = cfg.encoder.embed_size
        if self.tokens_out:
            # One extra target id starts the roll-out; the head predicts output_dim classes.
            net = build_model(cfg, a["input_dim"] if tokens_in else 2, a["output_dim"] + 1)
            net.head = VocabHead(net.decoder.output_size, a["output_dim"])
            if not tokens_in:
                net.encoder.embed = ValueEmbedding(a["input_dim"], embed)
        else:
            net = build_value_model(cfg, a["input_dim"] if not tokens_in else 1, a["output_dim"])
            if tokens_in:
                net.encoder.embed = TokenEmbedding(a["input_dim"], embed)
        self.net, self.tokens_in = net, tokens_in
        return net

    # ------------------------------------------------------------------ arrays

    def _inputs(self, X: Any, name: str = "X") -> np.ndarray:
        a = np.asarray(X)
        tokens = a.ndim == 2 and a.dtype.kind in "iu"
        if self.tokens_in is not None:
            tokens = self.tokens_in
        length, dim = self.args["input_length"], self.args["input_dim"]
        a = _check(name, a, (None, length) if tokens else (None, length, dim), tokens)
        if tokens and (a.min() < 0 or a.max() >= dim):
            raise ValueError(f"{name}: token ids must lie in [0, input_dim={dim}), got "
                             f"[{a.min()}, {a.max()}] (shape {a.shape})")  # fmt: skip
        if self.net is None:
            self.build(tokens)
        return a

    def _targets(self, Y: Any, n: int, name: str = "Y") -> np.ndarray:
        T, D = self.args["output_length"], self.args["output_dim"]
        kind = self.compiled["loss"]
        if kind == "sparse":
            y = _check(name, Y, (n, T), True)
            if y.min() < 0 or y.max() >= D:
                raise ValueError(f"{name}: class ids must lie in [0, output_dim={D}), got "
                                 f"[{y.min()}, {y.max()}] (shape {y.shape})")  # fmt: skip
            return y.astype(np.int64)
        y = _check(name, Y, (n, T, D), False)
        return y.argmax(-1).astype(np.int64) if kind == "categorical" else y.astype(np.float32)

    def _data(self, X: np.ndarray, Y: np.ndarray) -> ArrayData:
        n = len(X)
        src = X.astype(np.int64) if self.tokens_in else X.astype(np.float32)
        if self.tokens_out:
            start = np.full(n, self.args["output_dim"], dtype=np.int64)
        else:
            start = np.zeros((n, self.args["output_dim"]), dtype=np.float32)
        return ArrayData(src, start, None, Y)

    # ------------------------------------------------------------------ Keras verbs

    def fit(self, X, Y, epochs: int = 1, batch_size: int = 32, validation_split: float = 0.0,
            validation_data: tuple | None = None, verbose: int = 0) -> History:  # fmt: skip
        """Train; ``validation_split`` holds out the last fraction of the samples (as Keras)."""
        if self.compiled is None:
            raise RuntimeError("call compile(loss=..., optimizer=...) before fit")
        X = self._inputs(X)
        Y = self._targets(Y, len(X))
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"validation_split: a fraction in [0, 1), got {validation_split}")
        valid = None
        if validation_data is not None:
            vx = self._inputs(validation_data[0], "validation_data[0]")
            valid = self._data(vx, self._targets(validation_data[1], len(vx), "validation_data[1]"))
        elif validation_split:
            cut = len(X) - max(round(len(X) * validation_split), 1)
            valid = self._data(X[cut:], Y[cut:])
            X, Y = X[:cut], Y[:cut]
        train = self._data(X, Y)
        c = self.compiled
        tcfg = TrainConfig(
            optimizer=c["optimizer"], lr=c["lr"], batch_size=batch_size, epochs=epochs,
            clip_norm=c["clip_norm"], teacher_forcing=1.0 if self.args["teacher_force"] else 0.0,
            valid_exact=False, progress=verbose > 0, log_every=0, seed=self.args["seed"],
        )  # fmt: skip
        cfg = Config(model=self.model_config(), train=tcfg)
        kind = "crossentropy" if self.tokens_out else c["loss"]
        with tempfile.TemporaryDirectory() as run_dir:
            probe = valid or self._data(X[:256], Y[:256])  # 'loss' comes from the updates
            trainer = _QuietTrainer(cfg, self.net, train, probe, run_dir, loss=kind)
            trainer.quiet = verbose == 0
            result = trainer.fit()
        self.net.to("cpu")
        hist = History()
        for record in result.history:
            hist.epoch.append(record["epoch"] - 1)
            hist.history.setdefault("loss", []).append(record.get("train_loss", float("nan")))
            if valid is not None:
                hist.history.setdefault("val_loss", []).append(record["loss"])
        return hist

    @torch.no_grad()
    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """Roll-out outputs ``[samples, output_length, output_dim]`` (probabilities for tokens)."""
        X = self._inputs(X)
        self.net.eval()
        outs = []
        for i in range(0, len(X), batch_size):
            outs.append(self._predict_batch(self._data(X[i : i + batch_size], None)))
        return np.concatenate(outs)

    def _predict_batch(self, data: ArrayData) -> np.ndarray:
        src = data.src
        mask = src != 0 if self.tokens_in else torch.ones(src.shape[:2], dtype=torch.bool)
        T = self.args["output_length"]
        if not self.tokens_out:
            tgt_in = data.start[:, None].expand(-1, T, -1)  # only row 0 is read
            return rollout(self.net, src, mask, tgt_in, self.args["output_dim"])[0].numpy()
        memory = self.net.encode(src, mask)
        state, prev, probs = self.net.init_state(memory), data.start, []
        for _ in range(T):
            features, state, _ = self.net.step(prev, state, memory)
            probs.append(torch.softmax(self.net.head(features).float(), -1))  # [B, V]
            prev = probs[-1].argmax(-1)
        return torch.stack(probs, 1).numpy()

    def evaluate(self, X, Y, batch_size: int = 256) -> float:
        """The compiled loss of ``predict(X)`` against ``Y`` (mean per value / per token)."""
        pred = torch.from_numpy(self.predict(X, batch_size))
        y = torch.from_numpy(self._targets(Y, len(pred)))
        if self.tokens_out:
            logp = torch.log(pred.clamp_min(1e-12))
            return float(-logp.gather(-1, y[..., None]).mean())
        return float(regression_loss(pred, y, self.compiled["loss"])) / y.numel()

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """``path/estimator.json`` (class, arguments, compile settings) + ``model.safetensors``."""
        if self.net is None:
            raise RuntimeError("nothing to save: the model is not built (fit or predict first)")
        path = Path(path)
        meta = {"class": type(self).__name__, "args": self.args, "compile": self.compiled,
                "tokens_in": self.tokens_in}  # fmt: skip
        ckpt.save_weights(self.net, path / "model.safetensors", {"class": type(self).__name__})
        ckpt.atomic_write_text(path / "estimator.json", json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> _Seq2SeqEstimator:
        return load_model(path)


def load_model(path: str | os.PathLike) -> _Seq2SeqEstimator:
    """Rebuild an estimator written by ``save``."""
    meta = json.loads(Path(path, "estimator.json").read_text(encoding="utf-8"))
    classes = {c.__name__: c for c in (SimpleSeq2Seq, Seq2Seq, AttentionSeq2Seq)}
    if meta.get("class") not in classes:
        raise ValueError(f"{path}: unknown estimator class {meta.get('class')!r}")
    args = dict(meta["args"])
    args["depth"] = tuple(args["depth"])
    est = classes[meta["class"]](**args)
    est.compiled = meta["compile"]
    est.build(meta["tokens_in"])
    ckpt.load_weights(est.net, Path(path, "model.safetensors"))
    return est


class SimpleSeq2Seq(_Seq2SeqEstimator):
    """Encoder vector repeated as the decoder's only input (Keras RepeatVector; no feedback)."""

    _preset = "simple"

    def __init__(self, output_dim: int, output_length: int, **kwargs):
        super().__init__(output_dim, output_length, **kwargs)


class Seq2Seq(_Seq2SeqEstimator):
    """Sutskever et al. 2014 (state passing); ``peek=True``: Cho et al. 2014, the encoder
    vector enters every decoder step. ``teacher_force=False`` (the seeds' default) trains
    on the model's own previous outputs."""

    def __init__(self, output_dim: int, output_length: int, peek: bool = False,
                 teacher_force: bool = False, **kwargs):  # fmt: skip
        self._preset = "cho" if peek else "sutskever"
        super().__init__(output_dim, output_length, teacher_force=teacher_force, **kwargs)
        self.args["peek"] = peek


class AttentionSeq2Seq(_Seq2SeqEstimator):
    """Bahdanau et al. 2015: additive attention over a (by default bidirectional) encoder."""

    _preset = "bahdanau"

    def __init__(self, output_dim: int, output_length: int, bidirectional: bool = True,
                 **kwargs):  # fmt: skip
        super().__init__(output_dim, output_length, bidirectional=bidirectional, **kwargs)
