"""The estimator behind the array API's classes (:mod:`transduce.estimators`): Keras's
verbs (``compile``, ``fit``, ``predict``, ``evaluate``, ``summary``, ``count_params``,
``save``) on the project's models, trained by the project's training loop. The array shapes and
losses are described in the package's docstring.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import transduce.estimators.checks as checks
from transduce.config import Config, DecoderConfig, EncoderConfig, ModelConfig, TrainConfig
from transduce.data.series import ArrayData
from transduce.engine import checkpoint as ckpt
from transduce.engine.loop import Loop
from transduce.engine.objective import regression_loss
from transduce.errors import DataError
from transduce.estimators.callbacks import Callback, History, check_callbacks
from transduce.estimators.training import METRICS, KerasReport, check_metrics
from transduce.inference.search import rollout
from transduce.nn.embed import TokenEmbedding, ValueEmbedding
from transduce.nn.heads import VocabHead
from transduce.nn.models import build_parts, build_value_model
from transduce.tasks.series import SeriesTask

LOSSES = {
    "mse": "mse",
    "mean_squared_error": "mse",
    "mae": "mae",
    "mean_absolute_error": "mae",
    "huber": "huber",
    "categorical_crossentropy": "categorical",
    "sparse_categorical_crossentropy": "sparse",
}
DEFAULT_LR = {"adam": 1e-3, "rmsprop": 1e-3, "sgd": 1e-2}


class Estimator:
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
        checks.check_args(
            input_dim, output_dim, output_length, input_length, hidden_dim, embed_dim, dropout
        )
        checks.check_flags(bidirectional, teacher_force, seed)
        depth = checks.check_depth(depth)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"cell: 'lstm' or 'gru', got {cell!r}")
        self.args = dict(
            output_dim=output_dim,
            output_length=output_length,
            hidden_dim=hidden_dim or output_dim,
            input_dim=input_dim,
            input_length=input_length,
            depth=list(depth),
            cell=cell,
            dropout=dropout,
            bidirectional=bidirectional,
            teacher_force=teacher_force,
            embed_dim=embed_dim,
            seed=seed,
        )
        self.compiled: dict[str, Any] | None = None
        self.net: torch.nn.Module | None = None
        self.tokens_in: bool | None = None
        self.optimizer_state: dict[str, Any] | None = None  # carried from one fit to the next
        self.stop_training = False

    # ------------------------------------------------------------------ model

    def model_config(self) -> ModelConfig:
        a = self.args
        hidden, embed = a["hidden_dim"], a["embed_dim"] or a["hidden_dim"]
        enc, dec = a["depth"]
        return ModelConfig(
            preset=self._preset,
            cell=a["cell"],
            encoder=EncoderConfig(embed, hidden, enc, a["bidirectional"], a["dropout"]),
            decoder=DecoderConfig(embed, hidden, dec, a["dropout"]),
        )

    @property
    def tokens_out(self) -> bool:
        return self.compiled is not None and self.compiled["loss"] in ("categorical", "sparse")

    def compile(
        self,
        loss: str = "mse",
        optimizer: str = "rmsprop",
        lr: float | None = None,
        clip_norm: float | None = 1.0,
        metrics: str | list[str] | None = None,
    ) -> None:
        """Choose the loss (``mse``, ``mae``, ``huber``, ``categorical_crossentropy``,
        ``sparse_categorical_crossentropy``), the optimizer (``rmsprop``, ``adam``, ``sgd``)
        and ``metrics`` reported per epoch (``accuracy`` for classes; ``mae``, ``mse`` for
        values). ``lr`` None: the optimizer's default; ``clip_norm`` None or 0: no clipping.
        A new compile starts a fresh optimizer, as in Keras."""
        if loss not in LOSSES:
            raise ValueError(f"loss: one of {', '.join(LOSSES)}; got {loss!r}")
        if optimizer not in DEFAULT_LR:
            raise ValueError(f"optimizer: one of {', '.join(DEFAULT_LR)}; got {optimizer!r}")
        metrics = check_metrics(metrics, LOSSES[loss] in ("categorical", "sparse"))
        lr = DEFAULT_LR[optimizer] if lr is None else checks.positive("lr", lr)
        no_clip = clip_norm is None or (isinstance(clip_norm, (int, float)) and clip_norm == 0)
        clip_norm = None if no_clip else checks.positive("clip_norm", clip_norm)  # 0: as config
        kept = self.compiled is not None and self.compiled["loss"] == LOSSES[loss]
        self.compiled = dict(
            loss=LOSSES[loss],
            loss_name=loss,
            optimizer=optimizer,
            lr=lr,
            clip_norm=clip_norm,
            metrics=metrics,
        )
        self.optimizer_state = None
        if not kept:
            self.net = None  # the output kind changed: a new head

    def build(self, tokens_in: bool = False) -> torch.nn.Module:
        """Build the network (done by the first ``fit``/``predict`` from the input's dtype)."""
        if self.compiled is None:
            raise RuntimeError("call compile(loss=..., optimizer=...) first")
        torch.manual_seed(self.args["seed"])
        cfg, a = self.model_config(), self.args
        embed = cfg.encoder.embed_size
        # Built by composition: the input embedding and the head are handed to the preset.
        if self.tokens_out:
            # One extra target id starts the roll-out; the head predicts output_dim classes.
            net = build_parts(
                cfg,
                a["input_dim"] if tokens_in else 0,
                a["output_dim"] + 1,
                src_embed=None if tokens_in else ValueEmbedding(a["input_dim"], embed),
                make_head=lambda size: VocabHead(size, a["output_dim"]),
            )
        else:
            src_embed = TokenEmbedding(a["input_dim"], embed) if tokens_in else None
            net = build_value_model(cfg, a["input_dim"], a["output_dim"], src_embed=src_embed)
        self.net, self.tokens_in = net, tokens_in
        return net

    # ------------------------------------------------------------------ arrays

    def _inputs(self, X: Any, name: str = "X") -> np.ndarray:
        a = np.asarray(X)
        tokens = a.ndim == 2 and a.dtype.kind in "iu"
        if self.tokens_in is not None:
            tokens = self.tokens_in
        a = checks.check_inputs(name, a, self.args["input_length"], self.args["input_dim"], tokens)
        if self.net is None:
            self.build(tokens)
        return a

    def _targets(self, Y: Any, n: int, name: str = "Y") -> np.ndarray:
        shape = (n, self.args["output_length"], self.args["output_dim"])
        return checks.check_targets(name, Y, shape, self.compiled["loss"])

    def _data(self, X: np.ndarray, Y: np.ndarray) -> ArrayData:
        n = len(X)
        src = X.astype(np.int64) if self.tokens_in else X.astype(np.float32)
        if self.tokens_out:
            start = np.full(n, self.args["output_dim"], dtype=np.int64)
        else:
            start = np.zeros((n, self.args["output_dim"]), dtype=np.float32)
        return ArrayData(src, start, None, Y)

    # ------------------------------------------------------------------ Keras verbs

    def fit(
        self,
        X,
        Y,
        epochs: int = 1,
        batch_size: int = 32,
        validation_split: float = 0.0,
        validation_data: tuple | None = None,
        verbose: int = 1,
        callbacks: list[Callback] | None = None,
    ) -> History:
        """Train; ``validation_split`` holds out the last fraction of the samples (as Keras).
        ``verbose`` 1 or 2 prints one line per epoch (0: silent). Calling ``fit`` again goes
        on from the same weights and optimizer state."""
        if self.compiled is None:
            raise RuntimeError("call compile(loss=..., optimizer=...) before fit")
        checks.count("batch_size", batch_size, 1)
        checks.count("epochs", epochs, 0)
        checks.check_fit(validation_split, verbose)
        callbacks = check_callbacks(callbacks)
        X = self._inputs(X)
        Y = self._targets(Y, len(X))
        valid = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: a pair (X, Y)")
            vx = self._inputs(validation_data[0], "validation_data[0]")
            valid = self._data(vx, self._targets(validation_data[1], len(vx), "validation_data[1]"))
        elif validation_split:
            cut = len(X) - max(round(len(X) * validation_split), 1)
            if cut < 1:
                raise ValueError(
                    f"validation_split {validation_split} of {len(X)} samples leaves none "
                    "to train on"
                )
            valid = self._data(X[cut:], Y[cut:])
            X, Y = X[:cut], Y[:cut]
        probe = valid or self._data(X[:256], Y[:256])  # validation's 'loss' is not shown then
        train = self._data(X, Y)
        return self._train(train, valid, probe, epochs, batch_size, verbose, callbacks)

    def _train(
        self,
        train: ArrayData,
        valid: ArrayData | None,
        probe: ArrayData,
        epochs: int,
        batch_size: int,
        verbose: int,
        callbacks: list[Callback],
    ) -> History:
        c = self.compiled
        tcfg = TrainConfig(
            optimizer=c["optimizer"],
            lr=c["lr"],
            batch_size=batch_size,
            epochs=epochs,
            clip_norm=c["clip_norm"],
            teacher_forcing=1.0 if self.args["teacher_force"] else 0.0,
            valid_exact=False,
            progress=False,
            log_every=0,
            seed=self.args["seed"],
        )
        cfg = Config(model=self.model_config(), train=tcfg)
        kind = "crossentropy" if self.tokens_out else c["loss"]
        history, self.stop_training = History(), False
        for callback in callbacks:
            callback.set_model(self)
            callback.on_train_begin()
        with tempfile.TemporaryDirectory() as run_dir:
            report = KerasReport(
                self, c.get("metrics", []), callbacks, verbose, valid is not None, history
            )
            task = SeriesTask(cfg, self.net, train, probe, loss=kind)
            trainer = Loop(cfg, task, run_dir, callbacks=[report])  # no files: a tmp run
            if self.optimizer_state is not None:
                trainer.optimizer.load_state_dict(self.optimizer_state)
            trainer.fit()
            self.optimizer_state = trainer.optimizer.state_dict()
        self.net.to("cpu")
        for callback in callbacks:
            callback.on_train_end()
        return history

    @torch.no_grad()
    def predict(self, X, batch_size: int = 256) -> np.ndarray:
        """Roll-out outputs ``[samples, output_length, output_dim]`` (probabilities for tokens)."""
        checks.count("batch_size", batch_size, 1)
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

    def evaluate(self, X, Y, batch_size: int = 256) -> float | list[float]:
        """The compiled loss of ``predict(X)`` against ``Y`` (mean per value / per token);
        with compiled metrics ``[loss, metric, ...]`` as Keras returns them."""
        pred = torch.from_numpy(self.predict(X, batch_size))
        y = torch.from_numpy(self._targets(Y, len(pred)))
        if self.tokens_out:
            logp = torch.log(pred.clamp_min(1e-12))
            loss = float(-logp.gather(-1, y[..., None]).mean())
            scores = {"acc": float((pred.argmax(-1) == y).float().mean())}
        else:
            loss = float(regression_loss(pred, y, self.compiled["loss"])) / y.numel()
            scores = {"mae": float((pred - y).abs().mean()), "mse": float((pred - y).pow(2).mean())}
        names = self.compiled.get("metrics", [])
        return [loss, *(scores[METRICS[n]] for n in names)] if names else loss

    def count_params(self) -> int:
        """Number of trainable parameters (builds the network if needed)."""
        net = self.net if self.net is not None else self.build(bool(self.tokens_in))
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    def summary(self, print_fn=print) -> str:
        """A Keras-like table of the network's parts and their parameter counts; printed
        with ``print_fn`` and returned."""
        net = self.net if self.net is not None else self.build(bool(self.tokens_in))
        rows = [("Layer (type)", "Param #"), None]
        for name, part in net.named_children():
            rows.append((f"{name} ({type(part).__name__})", _params(part)))
            for sub, child in part.named_children():
                rows.append((f"  {name}.{sub} ({type(child).__name__})", _params(child)))
        total = self.count_params()
        rows += [None, ("Total params", total), ("Trainable params", total)]
        width = max(len(r[0]) for r in rows if r) + 4
        line = "=" * (width + 12)
        text = [f'Model: "{type(self).__name__}"', line]
        for row in rows:
            if row is None:
                text.append("-" * (width + 12))
            else:
                count = f"{row[1]:,}" if isinstance(row[1], int) else row[1]
                text.append(f"{row[0]:<{width}}{count:>12}")
        text.append(line)
        out = "\n".join(text)
        print_fn(out)
        return out

    # ------------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """``path/estimator.json`` (class, arguments, compile settings) + ``model.safetensors``."""
        if self.net is None:
            raise RuntimeError("nothing to save: the model is not built (fit or predict first)")
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"save: {path} is a file; save writes a folder there")
        if path.is_dir() and any(path.iterdir()) and not (path / "estimator.json").is_file():
            names = ", ".join(sorted(p.name for p in path.iterdir())[:5])
            raise FileExistsError(  # a training run, an export, a home folder: not ours
                f"save: {path} holds other files ({names}) and no saved estimator; save "
                "writes a new folder or replaces an earlier save: give another path"
            )
        meta = {
            "class": type(self).__name__,
            "args": self.args,
            "compile": self.compiled,
            "tokens_in": self.tokens_in,
        }
        ckpt.save_weights(self.net, path / "model.safetensors", {"class": type(self).__name__})
        ckpt.atomic_write_text(path / "estimator.json", json.dumps(meta, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Estimator:
        """Rebuild an estimator written by ``save`` (its class is named in estimator.json;
        the classes are this one's subclasses, which the package imports). Called on one
        class (``SimpleSeq2Seq.load``), a saved estimator of another class is refused."""
        where = Path(path, "estimator.json")
        try:
            meta = json.loads(where.read_bytes()[: 1 << 20].decode("utf-8"))
        except FileNotFoundError:
            raise DataError(where, None, "file not found (not a saved estimator)") from None
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(where, None, f"not an estimator description ({err})"[:160]) from None
        classes = {c.__name__: c for c in _subclasses(Estimator)}
        if not isinstance(meta, dict) or meta.get("class") not in classes:
            found = meta.get("class") if isinstance(meta, dict) else meta
            raise DataError(where, None, f"unknown estimator class {str(found)[:60]!r}")
        if not issubclass(classes[meta["class"]], cls):  # Estimator.load takes any of them
            name = meta["class"]
            problem = f"a saved {name}, not a {cls.__name__} (load_model reads any class)"
            raise DataError(where, None, problem)
        try:
            args = dict(meta["args"])
            args["depth"] = tuple(args["depth"])
            est = classes[meta["class"]](**args)
            est.compiled = meta["compile"]
            est.build(meta["tokens_in"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(where, None, f"damaged estimator description ({err!s:.80})") from None
        ckpt.load_weights(est.net, Path(path, "model.safetensors"))
        return est


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
