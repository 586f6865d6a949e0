"""The transformer preset behind the step contract."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import padded_batch, reverse_pairs, tiny_config, write_tsv
from transduce.config import ModelConfig, TransformerConfig
from transduce.inference.search import beam_search, greedy
from transduce.inference.translate import Translator
from transduce.nn.models import build_model
from transduce.tasks.train import train


def tiny(pre_norm=True, positions="sinusoidal", tie=False, dropout=0.0):
    torch.manual_seed(0)
    cfg = ModelConfig(
        preset="transformer",
        tie_embeddings=tie,
        transformer=TransformerConfig(
            d_model=32,
            heads=4,
            ff_size=64,
            encoder_layers=2,
            decoder_layers=2,
            pre_norm=pre_norm,
            positions=positions,
            dropout=dropout,
        ),
    )
    return build_model(cfg, 20, 14)


def batch():
    return padded_batch(9)


@pytest.mark.parametrize("pre_norm", [True, False])
@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_incremental_decoding_equals_full_recomputation(pre_norm, positions):
    model = tiny(pre_norm, positions).eval()
    src, mask = batch()
    tgt = torch.randint(4, 14, (4, 7))
    with torch.no_grad():
        logits, attn = model(src, mask, tgt)
        memory = model.encode(src, mask)
        state, steps, attns = model.init_state(memory), [], []
        for t in range(7):
            features, state, a = model.step(tgt[:, t], state, memory)
            steps.append(model.head(features))
            attns.append(a)
    assert state.keys.shape[2] == 7  # one cached position per step
    assert torch.allclose(logits, torch.stack(steps, 1), atol=1e-4)
    assert torch.allclose(attn, torch.stack(attns, 1), atol=1e-5)


def test_padding_gets_no_attention_and_does_not_change_outputs():
    model = tiny().eval()
    src, mask = batch()
    tgt = torch.randint(4, 14, (4, 5))
    with torch.no_grad():
        logits, attn = model(src, mask, tgt)
        alone, _ = model(src[:1, :3], mask[:1, :3], tgt[:1])
    assert (attn[~mask[:, None, :].expand_as(attn)] == 0).all()
    assert torch.allclose(alone, logits[:1], atol=1e-4)


def test_beam_one_is_greedy_and_states_reorder():
    model = tiny().eval()
    src, mask = batch()
    g = greedy(model, src, mask, max_len=10)
    b = beam_search(model, src, mask, beam_size=1, max_len=10)
    assert [g.tokens[i, : g.lengths[i]].tolist() for i in range(4)] == [x[0] for x in b.tokens]
    nb = beam_search(model, src, mask, beam_size=4, nbest=3, max_len=10)
    assert all(s == sorted(s, reverse=True) for s in nb.scores)


@pytest.mark.parametrize("tie", [False, True])
def test_overfits_the_reverse_task(tie):
    model = tiny(tie=tie)
    torch.manual_seed(1)
    lengths = torch.randint(2, 6, (48,))
    src = torch.randint(4, 12, (48, 5)) * (torch.arange(5)[None] < lengths[:, None])
    rev = torch.stack(
        [torch.cat([s[:n].flip(0), s[n:]]) for s, n in zip(src, lengths, strict=True)]
    )
    tgt_in = torch.cat([torch.ones(48, 1, dtype=torch.long), rev], 1)
    tgt_out = torch.cat([rev, torch.zeros(48, 1, dtype=torch.long)], 1)
    tgt_out[torch.arange(48), lengths] = 2
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        logits, _ = model(src, src != 0, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, 14), tgt_out.reshape(-1), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    hyp = greedy(model.eval(), src, src != 0, max_len=8)
    exact = [
        hyp.tokens[i, : hyp.lengths[i]].tolist() == rev[i, : lengths[i]].tolist() for i in range(48)
    ]
    assert sum(exact) / 48 >= 0.95
    if tie:
        assert model.head.proj.weight is model.decoder.embed.embed.weight


def test_trains_saves_and_loads_through_the_trainer(tmp_path):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(120))
    model = {
        "preset": "transformer",
        "transformer": {
            "d_model": 32,
            "heads": 2,
            "ff_size": 64,
            "encoder_layers": 1,
            "decoder_layers": 1,
        },
    }
    result = train(tiny_config(tsv, model=model, train={"label_smoothing": 0.1}), tmp_path / "run")
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    t = Translator.load(tmp_path / "run")
    out = t.translate_full(["abc", ""])
    assert out[1].text == "" and out[0].attention.shape == (len(out[0].out_tokens), 3)
