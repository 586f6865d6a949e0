"""The one teacher-forcing policy: unrolling with ratio 1 is teacher forcing, with ratio 0
it is inference's roll-out, and the coins decide per example."""

import pytest
import torch

from transduce.config import DecoderConfig, EncoderConfig, ModelConfig
from transduce.data.windows import ValueBatch
from transduce.engine.objective import Objective
from transduce.engine.teacher import mix, unroll
from transduce.inference.search import rollout
from transduce.nn.models import build_model, build_value_model


def _cfg(preset: str) -> ModelConfig:
    return ModelConfig(
        preset=preset, cell="gru", encoder=EncoderConfig(8, 16), decoder=DecoderConfig(8, 16)
    )


@pytest.mark.parametrize("preset", ["luong", "bahdanau", "cho"])
def test_unroll_with_ratio_one_is_teacher_forcing_for_tokens(preset):
    torch.manual_seed(0)
    model = build_model(_cfg(preset), 12, 12).eval()
    src, tgt_in = torch.randint(4, 12, (3, 5)), torch.randint(4, 12, (3, 6))
    forced, _ = model(src, src != 0, tgt_in)
    memory = model.encode(src, src != 0)
    unrolled = unroll(model, memory, model.init_state(memory), tgt_in, 1.0, None)
    torch.testing.assert_close(unrolled, forced, rtol=1e-5, atol=1e-6)


def test_unroll_with_ratio_zero_is_the_inference_roll_out_for_values():
    torch.manual_seed(0)
    model = build_value_model(_cfg("luong"), 2, 1, 3).eval()
    src, tgt_in = torch.randn(4, 7, 2), torch.randn(4, 5, 4)
    mask = torch.ones(4, 7, dtype=torch.bool)
    expected, _ = rollout(model, src, mask, tgt_in, 1)
    memory = model.encode(src, mask)
    got = unroll(model, memory, model.init_state(memory), tgt_in, 0.0, None, values=1)
    torch.testing.assert_close(got, expected)
    batch = ValueBatch(src, tgt_in, torch.randn(4, 5, 1), torch.arange(4))
    torch.testing.assert_close(Objective(model, "mae").outputs(batch, 0.0), expected)


def test_mix_decides_per_example_and_draws_no_coin_at_zero():
    gold, own = torch.zeros(1000, 2), torch.ones(1000, 2)
    coins = torch.Generator().manual_seed(1)
    out = mix(gold, own, 0.3, coins)
    assert torch.equal(out[:, 0], out[:, 1])  # one coin per example, not per value
    assert 0.25 < float((out[:, 0] == 0).float().mean()) < 0.35
    before = coins.get_state()
    assert torch.equal(mix(gold, own, 0.0, coins), own)
    assert torch.equal(coins.get_state(), before)
