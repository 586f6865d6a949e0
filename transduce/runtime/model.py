"""An exported model's graphs behind the step contract, on onnxruntime and numpy.

:class:`OnnxModel` has the ``encode`` / ``init_state`` / ``step`` / ``head`` methods and
the ``select``-able memory and state that :mod:`transduce.inference.searchcore` needs, so the
search that runs on torch runs here unchanged. No torch is imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from transduce.config import ConfigError
from transduce.device import onnx_providers
from transduce.errors import ExportError
from transduce.inference.numpy_ops import NumpyOps
from transduce.runtime.manifest import check_graph, validate

OPS = NumpyOps()
GRAPHS = ("encoder", "init_state", "step", "head")


class Arrays:
    """Named arrays, batch first: an exported ``Memory`` or decoder state."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def select(self, index: np.ndarray) -> Arrays:
        return Arrays({k: v[index] for k, v in self.arrays.items()})


class SharedArrays(Arrays):
    """A memory shared by consecutive rows: row ``r`` of the search reads row
    ``r // rows_per`` of ``arrays``. Beam search repeats each source ``k`` times and later
    keeps whole sentences, so this memory is never copied per hypothesis: ``select`` keeps
    it shared where the selected rows come in equal runs of one source row (and copies only
    the source rows kept), and copies row by row otherwise."""

    __slots__ = ("rows_per",)

    def __init__(self, arrays: dict[str, np.ndarray], rows_per: int = 1):
        super().__init__(arrays)
        self.rows_per = rows_per

    def select(self, index: np.ndarray) -> SharedArrays:
        source = np.asarray(index) // self.rows_per  # [n] the source row of each row
        n = len(source)
        runs = 1 + int(np.count_nonzero(source[1:] != source[:-1]))
        per = n // runs if n and n % runs == 0 else 1
        if per > 1 and not (source.reshape(-1, per) == source[::per, None]).all():
            per = 1
        first = source[::per]  # the source row of each group of `per` rows
        size = len(next(iter(self.arrays.values())))
        if len(first) == size and (first == np.arange(size)).all():
            return SharedArrays(self.arrays, per)  # the same source rows, in order: no copy
        return SharedArrays({k: v[first] for k, v in self.arrays.items()}, per)


def read_manifest(model_dir: str | os.PathLike, engine: str | None = None) -> dict:
    """An export's ``manifest.json``; ``engine``: also require that engine."""
    path = Path(model_dir, "manifest.json")
    if not path.is_file():
        raise ExportError(f"{path}: no such file (not an exported transduce model)")
    try:
        manifest = json.loads(path.read_bytes()[: 1 << 20].decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path}: not valid JSON ({str(err)[:80]})") from None
    if not isinstance(manifest, dict) or "engine" not in manifest:
        raise ExportError(f"{path}: not a transduce export manifest (no 'engine')")
    validate(manifest, Path(model_dir), path)
    if engine is not None and manifest["engine"] != engine:
        raise ExportError(f"{Path(model_dir)}: engine {manifest['engine']!r}, not {engine}")
    return manifest


class OnnxModel:
    """The four graphs of an ONNX export as one model (``threads``: intra-op threads;
    ``device``: cpu, cuda, cuda:N or auto, see :func:`transduce.device.onnx_providers`).
    On a GPU the search stays in numpy: each step's inputs go to the device and back."""

    def __init__(self, model_dir: str | os.PathLike, threads: int = 0, device: str = "cpu"):
        import onnxruntime as ort

        self.dir = Path(model_dir)
        self.manifest = read_manifest(self.dir, engine="onnx")
        providers = onnx_providers(device)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.sessions = {}
        for name in GRAPHS:
            path = self.dir / f"{name}.onnx"
            if not path.is_file():
                raise ExportError(f"{path}: no such file (incomplete export)")
            session = _session(ort, path, opts, providers)
            if device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():
                # onnxruntime falls back to the CPU when CUDA cannot start (no driver, no
                # cuDNN): asked for a GPU, say so rather than run on the CPU unnoticed
                raise ConfigError(
                    f"device {device}: onnxruntime could not start its CUDA provider for "
                    f"{path.name} (see its log; check the CUDA and cuDNN libraries)"
                )
            self.sessions[name] = session
        self.inputs = {n: [i.name for i in s.get_inputs()] for n, s in self.sessions.items()}
        self.outputs = {n: [o.name for o in s.get_outputs()] for n, s in self.sessions.items()}
        for name in GRAPHS:
            check_graph(self.dir / f"{name}.onnx", name, self.inputs[name], self.outputs[name])
        topk = self.dir / "topk.onnx"
        self.ops = NumpyOps(_session(ort, topk, opts, providers) if topk.is_file() else None)
        self.providers: list[str] = self.sessions["encoder"].get_providers()
        if "log_probs" not in self.outputs["head"]:
            self.log_probs = None  # a regression head: the search never asks
        # a step graph that takes its rows grouped by source (export/transformer.py)
        self.grouped = bool(self.manifest.get("graphs", {}).get("grouped"))

    def _run(self, name: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = {k: feed[k] for k in self.inputs[name]}
        values = self.sessions[name].run(None, wanted)
        return dict(zip(self.outputs[name], values, strict=True))

    def encode(self, src: np.ndarray, src_mask: np.ndarray) -> Arrays:
        """``src [B, S]`` ids (or ``[B, S, F]`` values), ``src_mask [B, S]`` -> memory."""
        out = self._run("encoder", {"src": src, "src_mask": src_mask})
        return SharedArrays(out) if self.grouped else Arrays(out)

    def init_state(self, memory: Arrays) -> Arrays:
        out = self._run("init_state", memory.arrays)
        if self.grouped:  # [B, 1, ...] -> one row per source, [B, ...]
            out = {k: v.reshape(v.shape[0] * v.shape[1], *v.shape[2:]) for k, v in out.items()}
        return Arrays(out)

    def step(self, prev: np.ndarray, state: Arrays, memory: Arrays):
        """``prev [B]`` -> features ``[B, F]``, new state, attention ``[B, S]`` or None.
        A grouped graph reads the ``B`` rows as ``[b, B / b]``, ``b`` the memory's rows:
        each row's state is a view, never a copy."""
        feed, rows = {"prev": prev, **state.arrays}, len(prev)
        if self.grouped:
            groups = rows // memory.rows_per
            feed = {k: v.reshape(groups, memory.rows_per, *v.shape[1:]) for k, v in feed.items()}
        out = self._run("step", {**feed, **memory.arrays})
        if self.grouped:  # [b, f, ...] -> [B, ...]
            out = {k: v.reshape(rows, *v.shape[2:]) for k, v in out.items()}
        new = Arrays({k[4:]: v for k, v in out.items() if k.startswith("new_state.")})
        return out["features"], new, out.get("attention")

    def head(self, features: np.ndarray) -> np.ndarray:
        return self._run("head", {"features": features})["logits"]

    def log_probs(self, features: np.ndarray) -> np.ndarray:
        """Next-token log-probabilities ``[B, V]`` (the head graph's log-softmax)."""
        return self.sessions["head"].run(["log_probs"], {"features": features})[0]


def _session(ort, path: Path, opts, providers: list[str]):
    """An onnxruntime session of the graph at ``path``; a damaged file is one line."""
    try:
        return ort.InferenceSession(str(path), opts, providers=providers)
    except Exception as err:  # onnxruntime raises its own exception types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{path}: cannot be loaded: {first[:200]}") from None
