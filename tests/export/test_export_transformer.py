"""The export layout of the transformer decoder computes what the decoder computes: the
same features, attention and next steps, with rows grouped by source (``f`` per source)."""

from __future__ import annotations

import pytest
import torch

from transduce.config import ModelConfig, TransformerConfig
from transduce.export.graphs import exportable
from transduce.export.transformer import ExportTransformerDecoder
from transduce.nn.models import build_model


def _model(pre_norm: bool):
    t = TransformerConfig(
        d_model=16, heads=4, ff_size=32, encoder_layers=1, decoder_layers=2, pre_norm=pre_norm
    )
    torch.manual_seed(0)
    return build_model(ModelConfig(preset="transformer", transformer=t), 11, 13).eval()


@pytest.mark.parametrize("pre_norm", [True, False])
@pytest.mark.parametrize("rows_per_source", [1, 3])
def test_grouped_steps_equal_the_decoder(pre_norm, rows_per_source):
    model = _model(pre_norm)
    fast = exportable(model)
    assert isinstance(fast.decoder, ExportTransformerDecoder)
    lengths = torch.tensor([6, 2, 4])
    mask = torch.arange(6)[None, :] < lengths[:, None]
    src = torch.randint(4, 11, (3, 6)).masked_fill(~mask, 0)
    f, generator = rows_per_source, torch.Generator().manual_seed(1)
    rows = torch.arange(3).repeat_interleave(f)  # source of each row
    with torch.no_grad():
        memory = model.encode(src, mask).select(rows)
        state = model.init_state(memory)
        grouped_memory = fast.encode(src, mask)
        grouped = fast.init_state(grouped_memory)
        grouped = type(grouped)(*(t.expand(-1, f, *t.shape[2:]) for t in grouped))
        for _ in range(5):
            prev = torch.randint(3, 13, (3 * f,), generator=generator)
            feats, state, attn = model.step(prev, state, memory)
            feats2, grouped, attn2 = fast.step(prev.view(3, f), grouped, grouped_memory)
            torch.testing.assert_close(feats2.reshape(3 * f, -1), feats, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(attn2.reshape(3 * f, -1), attn, atol=1e-6, rtol=1e-5)
            assert (attn2.reshape(3 * f, -1)[~mask[rows]] == 0).all()  # padding gets none
    assert grouped.k0.shape == (3, f, 4, 4, 5)  # [b, f, h, d/h, t]: the cache grew per step
