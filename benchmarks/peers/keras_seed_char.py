"""Peer baseline: the classic Keras character-level seq2seq ("lstm_seq2seq") in Keras 3.

Reproduces the "seed" character-level recipe so transduce's speed can be compared with it:
the first 10,000 lines of the Tatoeba English-Greek pairs (``tatoeba/ell.txt``), one-hot
characters, an LSTM(256) encoder whose final states initialise an LSTM(256) decoder, a softmax
Dense layer over target characters, RMSprop, categorical cross-entropy, batch size 64, 10 epochs
and ``validation_split=0.2``. It follows today's keras-io example (``lstm_seq2seq``) exactly,
including its padding: inputs and targets are padded with the space character (the old Keras 2
version padded with all-zero rows, whose accuracy problem keras issue #13266 / PR #13269 fixed).

It prints one JSON line: per-epoch wall times, validation token accuracy over real target
characters (the target text and its closing newline, not the space padding) and as Keras's
``val_accuracy`` counts it (every position, space padding included), the final validation loss,
and the time to greedily decode the first 100 inputs (training lines, as the example decodes
the first lines) with the example's one-sentence, one-``predict``-per-character loop.
``benchmarks/seed_char.py --keras-split`` reports the same figures for transduce.

Keras is not a dependency of transduce; run this from a separate environment::

    python3 -m venv ../kerasenv      # outside the repository
    ../kerasenv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1
    taskset -c 1 ../kerasenv/bin/python benchmarks/peers/keras_seed_char.py --threads 1

The backend is taken from ``KERAS_BACKEND`` (default ``tensorflow``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after Keras's own packages
from bench_cli import int_at_least
from bench_cli import parser as make_parser

try:
    import numpy as np
except ModuleNotFoundError:  # main() says what to install
    np = None

LATENT = 256
BATCH = 64
VAL_SPLIT = 0.2


def default_data() -> Path:
    repo = Path(__file__).resolve().parents[2]
    root = Path(os.environ.get("TRANSDUCE_DATA") or repo / ".." / "shared" / "data")
    return root / "tatoeba" / "ell.txt"


def load_pairs(path: Path, lines: int) -> tuple[list[str], list[str]]:
    sources: list[str] = []
    targets: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if len(sources) >= lines:
                break
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            sources.append(fields[0])
            targets.append("\t" + fields[1] + "\n")
    return sources, targets


def one_hot(texts: list[str], index: dict[str, int], length: int) -> np.ndarray:
    """One-hot ``[N, length, V]``; every position after the text is the space character,
    as the keras-io example pads (``data[i, t + 1 :, index[" "]] = 1.0``)."""
    data = np.zeros((len(texts), length, len(index)), dtype="float32")
    for i, text in enumerate(texts):
        for t, char in enumerate(text):
            data[i, t, index[char]] = 1.0
        data[i, len(text) :, index[" "]] = 1.0
    return data


def shifted_targets(targets: list[str], index: dict[str, int], length: int) -> np.ndarray:
    """The decoder's targets: the input shifted left by one (no leading tab), space-padded
    from the last character on, as the example builds ``decoder_target_data``."""
    return one_hot([text[1:] for text in targets], index, length)


def configure_threads(backend: str, threads: int) -> None:
    """One intra-op and one inter-op thread (TensorFlow), set before any op runs."""
    if not threads:
        return
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)


def thread_count(backend: str) -> int:
    cores = len(os.sched_getaffinity(0))
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.config.threading.get_intra_op_parallelism_threads() or cores
    if backend == "torch":
        import torch

        return torch.get_num_threads()
    return cores


INSTALL = "../kerasenv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1"
BACKEND_PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "torch": ("torch", "torch")}


def missing_package(backend: str) -> str | None:
    """What this interpreter lacks to run the peer (numpy, the backend, keras), in one
    line with the install command of the docstring; None when all is there."""
    module, package = BACKEND_PACKAGES.get(backend, (backend, backend))
    for name, pip_name in (("numpy", "numpy"), (module, package), ("keras", "keras")):
        if importlib.util.find_spec(name) is None:
            return (
                f"{pip_name} is not installed in {sys.executable} (KERAS_BACKEND={backend}): "
                f"run this script from Keras's own environment, made as its docstring shows: "
                f"python3 -m venv ../kerasenv; {INSTALL}"
            )
    return None


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--epochs", type=int_at_least(1), default=10)
    parser.add_argument("--lines", type=int_at_least(2), default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int_at_least(0), default=0, help="0: the backend's default"
    )
    parser.add_argument(
        "--decode", type=int_at_least(0), default=100, help="training inputs to decode"
    )
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file (Tatoeba's ell.txt; TRANSDUCE_DATA)")

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if problem := missing_package(os.environ["KERAS_BACKEND"]):
        print(f"{parser.prog}: error: {problem}", file=sys.stderr)
        sys.exit(2)
    configure_threads(os.environ["KERAS_BACKEND"], args.threads)
    import keras

    keras.utils.set_random_seed(args.seed)
    sources, targets = load_pairs(args.data, args.lines)
    src_chars = sorted({c for text in sources for c in text})
    tgt_chars = sorted({c for text in targets for c in text})
    src_index = {c: i for i, c in enumerate(src_chars)}
    tgt_index = {c: i for i, c in enumerate(tgt_chars)}
    max_src = max(len(text) for text in sources)
    max_tgt = max(len(text) for text in targets)

    enc_data = one_hot(sources, src_index, max_src)
    dec_data = one_hot(targets, tgt_index, max_tgt)
    dec_target = shifted_targets(targets, tgt_index, max_tgt)

    enc_in = keras.Input(shape=(None, len(src_chars)))
    _, state_h, state_c = keras.layers.LSTM(LATENT, return_state=True)(enc_in)
    dec_in = keras.Input(shape=(None, len(tgt_chars)))
    dec_lstm = keras.layers.LSTM(LATENT, return_sequences=True, return_state=True)
    dec_seq, _, _ = dec_lstm(dec_in, initial_state=[state_h, state_c])
    dec_dense = keras.layers.Dense(len(tgt_chars), activation="softmax")
    model = keras.Model([enc_in, dec_in], dec_dense(dec_seq))
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)
            shown = {k: round(float(v), 4) for k, v in (logs or {}).items()}
            print(f"epoch {epoch + 1}: {self.seconds[-1]:.2f}s {shown}", file=sys.stderr)

    timer = EpochTimer()
    history = model.fit(
        [enc_data, dec_data],
        dec_target,
        batch_size=BATCH,
        epochs=args.epochs,
        validation_split=VAL_SPLIT,
        callbacks=[timer],
        verbose=0,  # keep stdout for the JSON line
    )

    # validation_split takes the last floor-complement of the arrays, before any shuffling.
    split = int(np.floor(len(sources) * (1.0 - VAL_SPLIT)))
    probs = model.predict([enc_data[split:], dec_data[split:]], batch_size=BATCH, verbose=0)
    truth = dec_target[split:]
    hits = np.argmax(truth, axis=-1) == np.argmax(probs, axis=-1)
    # Real target characters: the text and its closing newline (len(target) - 1 positions).
    lengths = np.array([len(text) - 1 for text in targets[split:]])
    real = np.arange(max_tgt)[None, :] < lengths[:, None]
    acc_padded = float(hits.mean())
    acc_nonpad = float(hits[real].mean())
    print(f"history val_accuracy {history.history['val_accuracy'][-1]:.4f}", file=sys.stderr)

    # Classic inference: encoder model for the states, decoder model stepped one char at a time.
    encoder_model = keras.Model(enc_in, [state_h, state_c])
    h_in = keras.Input(shape=(LATENT,))
    c_in = keras.Input(shape=(LATENT,))
    step_seq, step_h, step_c = dec_lstm(dec_in, initial_state=[h_in, c_in])
    decoder_model = keras.Model([dec_in, h_in, c_in], [dec_dense(step_seq), step_h, step_c])

    def decode(seq: np.ndarray) -> str:
        states = encoder_model.predict(seq, verbose=0)
        token = np.zeros((1, 1, len(tgt_chars)), dtype="float32")
        token[0, 0, tgt_index["\t"]] = 1.0
        out = ""
        while True:
            probs, h, c = decoder_model.predict([token, *states], verbose=0)
            char = tgt_chars[int(np.argmax(probs[0, -1, :]))]
            if char == "\n" or len(out) + 1 > max_tgt:
                return out
            out += char
            token = np.zeros((1, 1, len(tgt_chars)), dtype="float32")
            token[0, 0, tgt_index[char]] = 1.0
            states = [h, c]

    start = time.perf_counter()
    n_decode = min(args.decode, split)  # the first lines: training inputs
    decoded = [decode(enc_data[i : i + 1]) for i in range(n_decode)]
    decode_seconds = time.perf_counter() - start
    for i in range(3):
        print(f"{sources[i]!r} -> {decoded[i]!r}", file=sys.stderr)

    backend = keras.backend.backend()
    result = {
        "framework": "keras",
        "keras_version": keras.__version__,
        "backend": backend,
        "seconds_per_epoch_median": statistics.median(timer.seconds),
        "epoch_seconds": [round(s, 3) for s in timer.seconds],
        "val_acc_keras_padded": acc_padded,
        "val_acc_nonpad": acc_nonpad,
        "val_loss": float(history.history["val_loss"][-1]),
        "decoded": n_decode,
        "decode_seconds": decode_seconds,
        "val_accuracy_keras": float(history.history["val_accuracy"][-1]),
        "threads": thread_count(backend),
        "lines": len(sources),
        "epochs": args.epochs,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
