"""ONNX export of every preset: the exported graphs, run by the torch-free runtime over the
shared search, give PyTorch's greedy and beam outputs on the reverse task's 48 sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transduce.config import ModelConfig, TransformerConfig
from transduce.export.onnx import example_source, export_graphs, write_manifest
from transduce.inference import searchcore as core
from transduce.inference.search import beam_search, greedy
from transduce.nn.models import build_model
from transduce.runtime.model import OPS, OnnxModel

MAX_LEN = 8
# One export per preset variant (exports take seconds each): every preset, both cells,
# every luong score, input feeding on and off, both local windows; the exporter's
# optimiser runs on two of them (it is the CLI's default), not on the rest (faster).
VARIANTS = {
    "simple-lstm": dict(case=("simple", "lstm", "auto", 220)),
    "sutskever-gru": dict(case=("sutskever", "gru", "auto", 100)),
    "cho-lstm": dict(case=("cho", "lstm", "auto", 100)),
    "bahdanau-gru": dict(case=("bahdanau", "gru", "auto", 80), optimize=True),
    "luong-dot-lstm": dict(case=("luong", "lstm", "dot", 100)),
    "luong-concat-gru-local-p": dict(
        case=("luong", "gru", "concat", 100), attention={"window": "local-p", "width": 2}
    ),
    "luong-general-gru-local-m-no-feed": dict(
        case=("luong", "gru", "general", 100),
        attention={"window": "local-m", "width": 2, "input_feeding": False},
    ),
    "transformer": dict(case=("transformer", "gru", "auto", 150), optimize=True),
    # its data-dependent table check failed torch.export (a 46-line error)
    "transformer-learned-positions": dict(case=("transformer", "gru", "auto", 150)),
}


def _model(name, make_model, train, task):
    v = VARIANTS[name]
    preset, cell, score, steps = v["case"]
    if preset == "transformer":
        learned = {"positions": "learned", "max_positions": 64} if "learned" in name else {}
        t = TransformerConfig(
            d_model=32, heads=4, ff_size=64, encoder_layers=2, decoder_layers=2, **learned
        )
        torch.manual_seed(0)
        model = build_model(ModelConfig(preset="transformer", transformer=t), 12, 12)
    else:
        model = make_model(preset, cell, score, attention=v.get("attention"))
    return train(model, task, steps)


@pytest.fixture(scope="session")
def exported(make_model, train, task, tmp_path_factory):
    """``exported(name)`` -> (trained torch model, its ONNX export loaded), cached."""
    cache = {}

    def get(name: str):
        if name not in cache:
            model = _model(name, make_model, train, task)
            out = tmp_path_factory.mktemp(name)
            src, mask = example_source(model, None)
            prev = torch.tensor([1, 5, 6])
            graphs = export_graphs(
                model, out, src, mask, prev, VARIANTS[name].get("optimize", False)
            )
            write_manifest(out, {"engine": "onnx", "kind": "tensors", "graphs": graphs})
            cache[name] = (model, OnnxModel(out, threads=1))
        return cache[name]

    return get


@pytest.mark.parametrize("name", VARIANTS)
def test_exported_greedy_and_beam_equal_pytorch(name, exported, task):
    model, onnx = exported(name)
    src, mask = task.src.numpy(), task.src_mask.numpy()
    ref = greedy(model, task.src, task.src_mask, MAX_LEN)
    hyp = core.decode(OPS, onnx, src, mask, MAX_LEN, None, OPS.argmax)
    assert hyp.tokens.tolist() == ref.tokens.tolist()
    np.testing.assert_allclose(hyp.scores, ref.scores.numpy(), atol=1e-4)
    if ref.attention is not None:
        np.testing.assert_allclose(hyp.attention, ref.attention.numpy(), atol=1e-5)
    for k, nbest in ((1, 1), (5, 3)):
        ref_b = beam_search(model, task.src, task.src_mask, k, nbest, MAX_LEN)
        hyp_b = core.beam_search(OPS, onnx, src, mask, MAX_LEN, beam=k, nbest=nbest)
        assert hyp_b.tokens == ref_b.tokens
        np.testing.assert_allclose(hyp_b.scores, ref_b.scores, atol=1e-4)
    # beam 1 == greedy on the runtime too
    assert [t[0] for t in hyp_b.tokens] == [t[0] for t in ref_b.tokens]


def test_beam_of_one_is_greedy_in_the_runtime(exported, task):
    _, onnx = exported("bahdanau-gru")
    src, mask = task.src.numpy(), task.src_mask.numpy()
    g = core.decode(OPS, onnx, src, mask, MAX_LEN, None, OPS.argmax)
    b = core.beam_search(OPS, onnx, src, mask, MAX_LEN, beam=1, attention=False)
    assert [t[0] for t in b.tokens] == [g.tokens[i, : g.lengths[i]].tolist() for i in range(48)]


@pytest.mark.parametrize(
    "alpha,normalize,ngram,ratio", [(0.6, False, 2, None), (0.0, True, 0, 1.0)]
)
def test_beam_options_equal_pytorch(alpha, normalize, ngram, ratio, exported, task):
    model, onnx = exported("transformer")
    ref = beam_search(model, task.src, task.src_mask, 4, 2, MAX_LEN, ratio, alpha, normalize, ngram)
    hyp = core.beam_search(
        OPS,
        onnx,
        task.src.numpy(),
        task.src_mask.numpy(),
        MAX_LEN,
        ratio,
        beam=4,
        nbest=2,
        alpha=alpha,
        normalize=normalize,
        no_repeat_ngram=ngram,
    )
    assert hyp.tokens == ref.tokens
    np.testing.assert_allclose(hyp.scores, ref.scores, atol=1e-4)


def test_sampling_at_temperature_zero_is_greedy_and_seeded_sampling_repeats(exported, task):
    _, onnx = exported("sutskever-gru")
    src, mask = task.src.numpy(), task.src_mask.numpy()
    g = core.decode(OPS, onnx, src, mask, MAX_LEN, None, OPS.argmax)
    s0 = core.sample(OPS, onnx, src, mask, MAX_LEN, temperature=0.0)
    assert s0.tokens.tolist() == g.tokens.tolist()
    a = core.sample(
        OPS, onnx, src, mask, MAX_LEN, nbest=2, temperature=1.5, top_k=5, top_p=0.9, seed=7
    )
    b = core.sample(
        OPS, onnx, src, mask, MAX_LEN, nbest=2, temperature=1.5, top_k=5, top_p=0.9, seed=7
    )
    assert a.tokens.tolist() == b.tokens.tolist() and a.tokens.shape[0] == 96


def test_transformer_cache_is_an_explicit_input_and_output(exported):
    """Per layer, split into heads: the step graph reads the cache and the cross-attention
    keys in place, and returns the cache one position longer."""
    _, onnx = exported("transformer")
    cache = {f"state.{kv}{i}" for kv in "kv" for i in range(2)}  # 2 decoder layers
    assert cache <= set(onnx.inputs["step"])
    assert {f"new_{name}" for name in cache} <= set(onnx.outputs["step"])
    assert {"memory.k0", "memory.v1", "memory.mask"} <= set(onnx.inputs["step"])
    src, mask = np.ones((2, 5), dtype=np.int64), np.ones((2, 5), dtype=bool)
    memory = onnx.encode(src, mask)
    state = onnx.init_state(memory)
    for t in range(3):
        _, state, _ = onnx.step(np.full(2, 1), state, memory)
        keys, values = state.arrays["state.k0"], state.arrays["state.v0"]
        assert keys.shape[-1] == values.shape[-2] == t + 1  # [B, h, d/h, t], [B, h, t, d/h]
    assert memory.arrays["memory.k0"].shape[-1] == memory.arrays["memory.v0"].shape[-2] == 5


def test_plain_rnn_cell_is_refused_by_name(make_model, tmp_path):
    model = make_model("sutskever", "rnn").eval()
    src, mask = example_source(model, None)
    with pytest.raises(ValueError, match="cell 'rnn' cannot be exported"):
        export_graphs(model, tmp_path, src, mask, torch.tensor([1, 5, 6]), optimize=False)


def test_runtime_topk_graph_equals_numpy_topk(tmp_path):
    import onnxruntime as ort

    from transduce.export.onnx import write_topk
    from transduce.inference.numpy_ops import NumpyOps

    write_topk(tmp_path / "topk.onnx")
    graph = NumpyOps(ort.InferenceSession(str(tmp_path / "topk.onnx")))
    x = np.random.default_rng(0).standard_normal((6, 1000)).astype(np.float32)
    x[:, 500:600] = 3.0  # ties: the lower index first, in both
    x[1, :] = -np.inf
    for k in (1, 10, 150):
        values, idx = graph.topk(x, k)
        ref_v, ref_i = NumpyOps().topk(x, k)
        np.testing.assert_array_equal(values, ref_v)
        np.testing.assert_array_equal(idx[[0, *range(2, 6)]], ref_i[[0, *range(2, 6)]])
