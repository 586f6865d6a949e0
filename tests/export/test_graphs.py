"""The exportable forms: the packing-free RNN encoder equals the packed one, and multi-input
and real-valued (forecasting) models export and run in the runtime like in PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.nn.test_multisource import VOCAB as MS_VOCAB
from tests.nn.test_multisource import make, pointer_task
from transduce.config import DecoderConfig, EncoderConfig, ModelConfig
from transduce.export.graphs import ExportRNNEncoder
from transduce.export.onnx import example_source, export_graphs, write_manifest
from transduce.inference import searchcore as core
from transduce.inference.search import beam_search, greedy
from transduce.inference.search import rollout as torch_rollout
from transduce.nn.encoders import RNNEncoder
from transduce.nn.models import build_value_model
from transduce.runtime import rollout
from transduce.runtime.model import OPS, OnnxModel


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)])
def test_packing_free_encoder_equals_the_packed_one(cell, layers, bidirectional):
    torch.manual_seed(0)
    enc = RNNEncoder(20, 8, 16, cell, layers, bidirectional).eval()
    lengths = torch.tensor([7, 1, 4, 6, 0])  # a zero-length row as well
    mask = torch.arange(7)[None, :] < lengths[:, None]
    src = torch.randint(4, 20, (5, 7)).masked_fill(~mask, 0)
    with torch.no_grad():
        ref, out = enc(src, mask), ExportRNNEncoder(enc)(src, mask)
    torch.testing.assert_close(out.outputs, ref.outputs, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.final_h, ref.final_h, atol=1e-6, rtol=1e-5)
    if cell == "lstm":
        torch.testing.assert_close(out.final_c, ref.final_c, atol=1e-5, rtol=1e-4)


def _export(model, tmp_path, src, mask, prev) -> OnnxModel:
    graphs = export_graphs(model, tmp_path, src, mask, prev, optimize=False)
    write_manifest(tmp_path, {"engine": "onnx", "kind": "tensors", "graphs": graphs})
    return OnnxModel(tmp_path, threads=1)


@pytest.mark.parametrize("preset,mode", [("luong", "concat_time"), ("bahdanau", "gated")])
def test_multi_input_model_exports(preset, mode, tmp_path):
    model = make(preset, mode).eval()
    src, mask, *_ = pointer_task()
    onnx = _export(model, tmp_path, src[:3], mask[:3], torch.tensor([1, 5, 6]))
    s, m = src.numpy(), mask.numpy()
    ref = greedy(model, src, mask, 4)
    hyp = core.decode(OPS, onnx, s, m, 4, None, OPS.argmax)
    assert hyp.tokens.tolist() == ref.tokens.tolist() and MS_VOCAB > 4
    ref_b = beam_search(model, src, mask, 3, 2, 4)
    hyp_b = core.beam_search(OPS, onnx, s, m, 4, beam=3, nbest=2)
    assert hyp_b.tokens == ref_b.tokens


@pytest.mark.parametrize("preset", ["luong", "cho"])
def test_forecasting_rollout_equals_pytorch(preset, tmp_path):
    sizes = {"embed_size": 8, "hidden_size": 16}
    cfg = ModelConfig(
        preset=preset, cell="gru", encoder=EncoderConfig(**sizes), decoder=DecoderConfig(**sizes)
    )
    torch.manual_seed(0)
    model = build_value_model(cfg, input_dim=3, output_dim=1, exog_dim=2).eval()
    src, mask = example_source(model, 3)
    onnx = _export(model, tmp_path, src, mask, torch.randn(3, 3))
    gen = torch.Generator().manual_seed(1)
    windows = torch.randn(6, 11, 3, generator=gen)  # another batch and length than exported
    tgt_in = torch.randn(6, 5, 3, generator=gen)
    with torch.no_grad():
        ref, ref_attn = torch_rollout(
            model, windows, torch.ones(6, 11, dtype=torch.bool), tgt_in, 1
        )
    out, attn = rollout(onnx, windows.numpy(), tgt_in.numpy(), 1)
    np.testing.assert_allclose(out, ref.numpy(), atol=1e-5, rtol=1e-5)
    assert (attn is None) == (ref_attn is None)
