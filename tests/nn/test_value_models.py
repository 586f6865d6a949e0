"""Real-valued sequences through the token presets: shapes and the roll-out contract."""

from __future__ import annotations

import pytest
import torch

from transduce.config import DecoderConfig, EncoderConfig, ModelConfig
from transduce.inference.search import rollout
from transduce.nn.embed import ValueEmbedding
from transduce.nn.heads import RegressionHead
from transduce.nn.models import build_value_model

PRESETS = ["simple", "sutskever", "cho", "bahdanau", "luong"]


def _model(preset: str, cell: str = "gru") -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = ModelConfig(
        preset=preset, cell=cell, encoder=EncoderConfig(8, 12, 1), decoder=DecoderConfig(8, 12, 2)
    )
    return build_value_model(cfg, input_dim=3, output_dim=2, exog_dim=1).eval()


@pytest.mark.parametrize("preset", PRESETS)
def test_roll_out_with_gold_inputs_equals_teacher_forcing(preset):
    """Feeding the gold previous values step by step (ratio 1) is the teacher-forced unroll."""
    model = _model(preset, "lstm" if preset == "cho" else "gru")
    assert isinstance(model.encoder.embed, ValueEmbedding)
    assert isinstance(model.head, RegressionHead)
    src = torch.randn(4, 9, 3)  # [B, S, F]
    mask = torch.ones(4, 9, dtype=torch.bool)
    tgt_in = torch.randn(4, 5, 3)  # [B, T, D + C]
    with torch.no_grad():
        forced, _ = model(src, mask, tgt_in)  # [B, T, D]
        rolled, attn = rollout(model, src, mask, tgt_in, 2, teacher_ratio=1.0)
    assert forced.shape == rolled.shape == (4, 5, 2)
    torch.testing.assert_close(rolled, forced, rtol=1e-4, atol=1e-5)
    if preset in ("bahdanau", "luong"):
        assert attn.shape == (4, 5, 9)


def test_roll_out_feeds_its_own_outputs_back():
    model = _model("sutskever")
    src, mask = torch.randn(2, 6, 3), torch.ones(2, 6, dtype=torch.bool)
    tgt_in = torch.zeros(2, 4, 3)
    with torch.no_grad():
        free, _ = rollout(model, src, mask, tgt_in, 2)
        # rebuild the inputs the roll-out must have used: its own previous outputs
        fed = tgt_in.clone()
        fed[:, 1:, :2] = free[:, :-1]
        forced, _ = model(src, mask, fed)
    torch.testing.assert_close(free, forced, rtol=1e-4, atol=1e-5)


def test_transformer_is_refused_for_values():
    with pytest.raises(ValueError, match="RNN preset"):
        build_value_model(ModelConfig(preset="transformer"), 1, 1)
