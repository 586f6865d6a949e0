"""``transduce export onnx``: a trained model as four ONNX graphs and a manifest.

The graphs are the step contract (:mod:`transduce.export.graphs`), exported with the
dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``) with a dynamic batch,
source length and, for the transformer, key/value cache length. The directory also holds
the vocabularies (and sentencepiece models) and ``manifest.json``: preset, special ids,
decoding defaults, input fields, and for forecasting runs the window and scaling settings.
:mod:`transduce.runtime` reads it without PyTorch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from transduce.config import Config
from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from transduce.engine.checkpoint import atomic_write_text
from transduce.export.graphs import exportable, flat, rebuild
from transduce.nn.heads import VocabHead

log = logging.getLogger("transduce.export")
FORMAT = "transduce-onnx"
GRAPHS = ("encoder", "init_state", "step", "head")


def distinct(outputs, inputs) -> tuple:
    """``outputs`` with copies where one is an input or repeats an earlier output: the
    exporter would otherwise give both the same graph name (a state field a step passes
    through unchanged, the keys of dot attention, which are the outputs themselves)."""
    seen = {id(t) for t in inputs}
    out = []
    for t in outputs:
        out.append(t.clone() if id(t) in seen else t)
        seen.add(id(t))
    return tuple(out)


class _Encoder(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor):
        return distinct(flat(self.model.encode(src, src_mask))[1], (src, src_mask))


class _Init(nn.Module):
    def __init__(self, model: nn.Module, memory_cls, names: list[str]):
        super().__init__()
        self.model, self.cls, self.names = model, memory_cls, names

    def forward(self, *memory: torch.Tensor):
        state = self.model.init_state(rebuild(self.cls, self.names, memory))
        return distinct(flat(state)[1], memory)


class _Step(nn.Module):
    def __init__(self, model, memory_cls, memory_names, state_cls, state_names):
        super().__init__()
        self.model = model
        self.memory, self.state = (memory_cls, memory_names), (state_cls, state_names)

    def forward(self, prev: torch.Tensor, *tensors: torch.Tensor):
        n = len(self.state[1])
        state = rebuild(*self.state, tensors[:n])
        memory = rebuild(*self.memory, tensors[n:])
        features, state, attn = self.model.step(prev, state, memory)
        if getattr(self.model.decoder, "embed", True) is None:
            # 'simple' reads no previous token; an unused graph input breaks the exporter.
            features = features + (prev[:, None] * 0).to(features.dtype)
        out = (features, *flat(state)[1], *([] if attn is None else [attn]))
        return distinct(out, (prev, *tensors))


class _Head(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor):
        logits = self.model.head(features).float()
        if isinstance(self.model.head, VocabHead):  # the search's log-softmax, in the graph
            return logits, torch.log_softmax(logits, -1)
        return logits


def _dims(tensors: list[torch.Tensor], batch, length, cache=None, tuple_=None, group=None) -> tuple:
    """Dynamic dimensions of every input: dim 0 is the batch; where the NamedTuple
    ``tuple_`` the tensors come from declares its ``axes`` (field -> {axis: "src",
    "cache" or "group"}), those; else a dim 1 equal to the example source length is the
    source length, and dim 2 of a 4-D tensor the cache length when ``cache`` is given."""
    axes = getattr(tuple_, "axes", None)
    if axes is not None:
        names = flat(tuple_)[0]
        kinds = {"src": length, "cache": cache, "group": group}
        return tuple(
            {0: batch, **{axis: kinds[kind] for axis, kind in axes.get(name, {}).items()}}
            for name in names
        )
    specs = []
    for t in tensors:
        spec = {0: batch}
        if t.dim() >= 2 and t.shape[1] == EXAMPLE_SRC_LEN:
            spec[1] = length
        if cache is not None and t.dim() == 4:
            spec[2] = cache
        specs.append(spec)
    return tuple(specs)


EXAMPLE_BATCH, EXAMPLE_SRC_LEN, EXAMPLE_STEPS = 3, 7, 4


@contextmanager
def _quiet_exporter():
    """torch.onnx's own loggers (INFO progress, a warning per torchvision op it skips)
    held at ERROR, unless the command asked for other libraries' logs (``-v``: the root
    logger at INFO)."""
    if logging.getLogger().isEnabledFor(logging.INFO):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export(module, args: tuple, names_in, names_out, dynamic, path: Path, optimize=True):
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            dynamic_shapes=dynamic,
            input_names=names_in,
            output_names=names_out,
            verbose=False,
            optimize=optimize,
        )
    program.save(str(path))


def example_source(model: nn.Module, input_dim: int | None):
    """A padded example batch: ids (or values ``[B, S, input_dim]``) and a mask."""
    b, s = EXAMPLE_BATCH, EXAMPLE_SRC_LEN
    lengths = torch.tensor([s, s - 2, 3])
    mask = torch.arange(s)[None, :] < lengths[:, None]
    if input_dim is not None:
        return torch.randn(b, s, input_dim), torch.ones(b, s, dtype=torch.bool)
    src = torch.randint(4, 8, (b, s)).masked_fill(~mask, PAD_ID)
    return src, mask


def export_graphs(model: nn.Module, out: Path, src, src_mask, prev, optimize: bool = True) -> dict:
    """Export the four graphs of ``model`` into ``out``; returns their input/output names.
    ``optimize``: run the exporter's graph optimiser (slower to export)."""
    model = exportable(model)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("src_len")
    cache, group = torch.export.Dim("cache_len"), torch.export.Dim("group")
    grouped = getattr(model.decoder, "grouped", False)
    if grouped:  # traced with 2 rows per source (see export/transformer.py)
        prev = prev[:, None].expand(-1, 2)
    memory, state, features, state1, attn = _run_example(model, src, src_mask, prev, grouped)
    mem_names, mem = flat(memory)
    # A decoder without attention never reads the memory in a step: leave it out of the
    # step graph (an input nothing reads breaks the exporter's shape guards).
    attends = getattr(model.decoder, "scorer", True) is not None
    step_names, step_mem = (mem_names, mem) if attends else ([], [])
    st_names, st = flat(state1)
    m_io = [f"memory.{n}" for n in mem_names]
    s_in = [f"state.{n}" for n in st_names]
    s_out = [f"new_state.{n}" for n in st_names]
    step_out = ["features", *s_out, *(["attention"] if attn is not None else [])]
    is_cache = type(state1).__name__ == "TransformerState" or hasattr(state1, "axes")
    step_axes = memory if attends else None
    _export(
        _Encoder(model),
        (src, src_mask),
        ["src", "src_mask"],
        m_io,
        ({0: batch, 1: length}, {0: batch, 1: length}),
        out / "encoder.onnx",
        optimize,
    )
    _export(
        _Init(model, type(memory), mem_names),
        tuple(mem),
        m_io,
        [f"state.{n}" for n in flat(state)[0]],
        (_dims(mem, batch, length, tuple_=memory),),
        out / "init_state.onnx",
        optimize,
    )
    # forward(prev, *tensors): the variadic tensors' shapes go in one tuple
    dyn = (
        {0: batch, 1: group} if grouped else {0: batch},
        (
            *_dims(st, batch, length, cache if is_cache else None, state1, group),
            *_dims(step_mem, batch, length, tuple_=step_axes),
        ),
    )
    _export(
        _Step(model, type(memory), step_names, type(state1), st_names),
        (prev, *st, *step_mem),
        ["prev", *s_in, *[f"memory.{n}" for n in step_names]],
        step_out,
        dyn,
        out / "step.onnx",
        optimize,
    )
    _export_head(model, features.reshape(-1, features.shape[-1]), batch, out, optimize)
    graphs = {"memory": mem_names, "state": st_names, "attention": attn is not None}
    return {**graphs, "grouped": True} if grouped else graphs


def _run_example(model: nn.Module, src, src_mask, prev, grouped: bool = False) -> tuple:
    """The example tensors the graphs are traced with: memory, the initial state, and the
    features, state and attention after EXAMPLE_STEPS steps."""
    with torch.no_grad():
        memory = model.encode(src, src_mask)
        state = model.init_state(memory)
        if grouped:  # each source's state repeated for its rows
            state = type(state)(*(t.expand(-1, prev.shape[1], *t.shape[2:]) for t in state))
        features, state1, attn = model.step(prev, state, memory)
        for _ in range(EXAMPLE_STEPS - 1):  # a cache of several positions (transformer)
            _, state1, _ = model.step(prev, state1, memory)
    return memory, state, features, state1, attn


def _export_head(model: nn.Module, features, batch, out: Path, optimize: bool) -> None:
    """head.onnx; for a vocabulary head also log-probabilities and the top-k graph."""
    vocab = isinstance(model.head, VocabHead)
    head_out = ["logits", "log_probs"] if vocab else ["logits"]
    _export(
        _Head(model),
        (features,),
        ["features"],
        head_out,
        ({0: batch},),
        out / "head.onnx",
        optimize,
    )
    if vocab:
        write_topk(out / "topk.onnx")


def write_topk(path: Path) -> None:
    """One ONNX TopK node (``x [R, V]``, ``k [1]`` -> values, indices; ties to the lower
    index, as the ONNX spec says) for the runtime's beam search."""
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", "vocab"])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [1])
    values = helper.make_tensor_value_info("values", TensorProto.FLOAT, ["rows", "k"])
    indices = helper.make_tensor_value_info("indices", TensorProto.INT64, ["rows", "k"])
    node = helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=-1)
    graph = helper.make_graph([node], "topk", [x, k], [values, indices])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))


def quantize_int8(out: Path) -> None:
    """Dynamic int8 weights (onnxruntime's quantizer) in the graphs that hold the big
    matrices: encoder, step and head. The exporter's intermediate shape annotations are
    dropped first; the quantizer infers its own."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("encoder", "step", "head"):
        path, tmp = out / f"{name}.onnx", out / f".{name}.plain.onnx"
        model = onnx.load(str(path))
        del model.graph.value_info[:]
        onnx.save(model, str(tmp))
        try:
            logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger
            quantize_dynamic(str(tmp), str(path), weight_type=QuantType.QInt8)
        except Exception as err:  # the quantizer raises its own exception types
            raise ValueError(f"{path}: int8 quantisation failed: {str(err)[:200]}") from None
        finally:
            logging.disable(logging.NOTSET)
            tmp.unlink(missing_ok=True)


def write_manifest(out: Path, manifest: dict) -> None:
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    os.chmod(out / "manifest.json", 0o644)  # readable like the graphs beside it


def base_manifest(cfg: Config, engine: str, run_dir: Path, checkpoint: str) -> dict:
    m = cfg.model
    return {
        "format": FORMAT if engine == "onnx" else "transduce-ct2",
        "version": 1,
        "engine": engine,
        "source_run": str(run_dir),
        "checkpoint": checkpoint,
        "preset": m.preset,
        "cell": m.cell,
        "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID, "unk": UNK_ID},
        "decode": {
            "max_len": cfg.decode.max_len,
            "max_len_ratio": cfg.decode.max_len_ratio,
            "batch_size": cfg.decode.batch_size,
            "max_input_len": getattr(cfg.decode, "max_input_len", None),
            "on_long_input": getattr(cfg.decode, "on_long_input", "truncate"),
        },
    }


def copy_text_files(cfg: Config, run_dir: Path, out: Path) -> dict:
    """Vocabularies and sentencepiece models next to the graphs; returns their manifest."""
    d = cfg.data
    sides = {}
    for side, kind in (("src", d.src_tokenizer), ("tgt", d.tgt_tokenizer)):
        shutil.copyfile(run_dir / f"vocab.{side}.json", out / f"vocab.{side}.json")
        entry = {"tokenizer": kind, "lowercase": d.lowercase, "vocab": f"vocab.{side}.json"}
        if kind in ("bpe", "unigram"):
            name = "spm.joint.model" if d.joint_vocab else f"spm.{side}.model"
            shutil.copyfile(run_dir / name, out / name)
            entry["sentencepiece"] = name
        sides[side] = entry
    return {**sides, "fields": max(len(d.src_fields), 1), "input_fields": list(d.src_fields)}


def export_onnx(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    checkpoint: str = "best",
    quantize: str | None = None,
) -> Path:
    """Export the run in ``run_dir`` to ``out`` (graphs, vocabularies, ``manifest.json``)."""
    from transduce.config import load_run_config

    run_dir, out = Path(run_dir), Path(out)
    cfg = load_run_config(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = base_manifest(cfg, "onnx", run_dir, checkpoint)
    if cfg.series is not None:
        from transduce.forecasting.pipeline import Forecaster, window_spec

        model = Forecaster.load(run_dir, checkpoint).model
        spec = window_spec(cfg.series)
        src = torch.randn(EXAMPLE_BATCH, EXAMPLE_SRC_LEN, spec.features)
        mask = torch.ones(src.shape[:2], dtype=torch.bool)
        prev = torch.randn(EXAMPLE_BATCH, 1 + spec.exog_features)
        manifest["kind"] = "series"
        # a quantile head: outputs [median, (lo, hi) per level]; the conformal calibration
        # travels with the export so intervals need no torch (forecasting/conformal.py)
        manifest["series"] = {**spec.__dict__, "output_dim": 1, "levels": list(cfg.series.levels)}
        # the covariate columns by name, future-known first (the runtime reads them by name)
        manifest["series"]["covariate_names"] = [
            *cfg.series.covariates,
            *cfg.series.past_covariates,
        ]
        for name in ("conformal.json", "normalized.json", "series_ends.json"):
            if (run_dir / name).is_file():
                shutil.copyfile(run_dir / name, out / name)
    else:
        from transduce.inference.translate import Translator

        translator = Translator.load(run_dir, checkpoint)
        model = translator.model
        src, mask = example_source(model, None)
        prev = torch.tensor([BOS_ID, 5, 6])
        manifest["kind"] = "text"
        manifest["text"] = copy_text_files(cfg, run_dir, out)
        if cfg.model.preset == "transformer" and cfg.model.transformer.positions == "learned":
            manifest["positions"] = cfg.model.transformer.max_positions  # its table's rows
    try:
        manifest["graphs"] = export_graphs(model, out, src, mask, prev)
    except ValueError:
        raise
    except Exception as err:  # the exporter's own errors: say what could not be exported
        cell = "" if cfg.model.preset == "transformer" else f" (cell {cfg.model.cell!r})"
        said = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines() or [""]
        raise ValueError(
            f"{run_dir}: preset {cfg.model.preset!r}{cell} could not be exported to ONNX: "
            f"{type(err).__name__}: {said[0][:300]}"
        ) from err
    if quantize == "int8":
        quantize_int8(out)
    manifest["quantize"] = quantize
    write_manifest(out, manifest)
    return out
