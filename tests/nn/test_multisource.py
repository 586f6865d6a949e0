"""Multi-input models: every fusion mode learns a task that needs both inputs, fails when
one input is blanked, and decodes through the unchanged search (beam 1 == greedy)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from transduce.config import (
    DecoderConfig,
    EncoderConfig,
    FusionConfig,
    ModelConfig,
    from_dict,
)
from transduce.data.records import SEP_ID
from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from transduce.inference.search import beam_search, greedy
from transduce.nn.models import build_model
from transduce.nn.multisource import field_ids, unpack_field

SYMBOLS = list(range(5, 13))  # document symbols
QUESTIONS = list(range(13, 17))  # "what is at position k?"
VOCAB = 17

# (preset, fusion mode, steps): concat_state must squeeze the document into one vector.
MODES = [
    ("luong", "concat_time", 150),
    ("sutskever", "concat_state", 300),
    ("bahdanau", "gated", 150),
]


def pointer_task(docs: int = 16, blank: str | None = None, seed: int = 0):
    """Each document (4 distinct symbols) is asked all 4 questions "which symbol is at
    position k": the answer needs both inputs. ``blank`` replaces one field by ``<unk>``.
    Returns packed (src, src_mask, tgt_in, tgt_out, answers)."""
    gen = torch.Generator().manual_seed(seed)
    rows, answers = [], []
    for _ in range(docs):
        doc = [SYMBOLS[i] for i in torch.randperm(len(SYMBOLS), generator=gen)[:4].tolist()]
        for k, q in enumerate(QUESTIONS):
            question = [UNK_ID] if blank == "question" else [q]
            document = [UNK_ID] if blank == "document" else doc
            rows.append([*question, SEP_ID, *document])
            answers.append(doc[k])
    width = max(map(len, rows))
    src = torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows])
    ans = torch.tensor(answers)
    tgt_in = torch.stack([torch.full_like(ans, BOS_ID), ans], 1)
    tgt_out = torch.stack([ans, torch.full_like(ans, EOS_ID)], 1)
    return src, src != PAD_ID, tgt_in, tgt_out, ans


def make(preset: str, mode: str, shared: bool = False, cell: str = "gru", seed: int = 0):
    sizes = {"embed_size": 16, "hidden_size": 32}
    cfg = ModelConfig(
        preset=preset,
        cell=cell,
        encoder=EncoderConfig(**sizes),
        decoder=DecoderConfig(**sizes),
        fusion=FusionConfig(mode=mode, shared_encoder=shared),
    )
    torch.manual_seed(seed)
    return build_model(cfg, VOCAB, VOCAB, sources=2)


def fit(model, task, steps: int):
    src, mask, tgt_in, tgt_out, _ = task
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        logits, _ = model(src, mask, tgt_in)
        F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten()).backward()
        opt.step()
    return model.eval()


def accuracy(model, task) -> float:
    src, mask, _, _, answers = task
    hyp = greedy(model, src, mask, max_len=3)
    return (hyp.tokens[:, 0] == answers).float().mean().item()


@pytest.fixture(scope="module")
def trained():
    cache = {}

    def get(preset, mode, steps):
        if mode not in cache:
            cache[mode] = fit(make(preset, mode), pointer_task(), steps)
        return cache[mode]

    return get


@pytest.mark.parametrize(("preset", "mode", "steps"), MODES, ids=[m[1] for m in MODES])
def test_fusion_learns_a_task_that_needs_both_inputs(trained, preset, mode, steps):
    model = trained(preset, mode, steps)
    assert accuracy(model, pointer_task()) >= 0.95
    # Without the question at most one in 4 (the document's symbols); without the document
    # one in 8: chance, plus slack for 64 examples.
    assert accuracy(model, pointer_task(blank="question")) <= 0.4
    assert accuracy(model, pointer_task(blank="document")) <= 0.3


@pytest.mark.parametrize(("preset", "mode", "steps"), MODES, ids=[m[1] for m in MODES])
def test_beam_one_equals_greedy_with_two_inputs(trained, preset, mode, steps):
    model = trained(preset, mode, steps)
    src, mask, *_ = pointer_task(docs=6, seed=3)
    hyp = greedy(model, src, mask, max_len=4)
    nb = beam_search(model, src, mask, beam_size=1, max_len=4)
    assert [t[0] for t in nb.tokens] == [
        hyp.tokens[i, : hyp.lengths[i]].tolist() for i in range(len(src))
    ]
    wide = beam_search(model, src, mask, beam_size=3, nbest=2, max_len=4)  # beams > 1 run too
    assert all(len(t) == 2 for t in wide.tokens)


@pytest.mark.parametrize("mode", ["concat_time", "concat_state", "gated"])
def test_attention_never_reads_separator_or_padding(mode):
    model = make("luong", mode).eval()
    src = pointer_task(docs=2)[0]
    src[0, -2:] = PAD_ID  # a padded row
    hyp = greedy(model, src, src != PAD_ID, max_len=3)
    dead = (src == SEP_ID) | (src == PAD_ID)  # [B, S]
    assert hyp.attention is not None
    assert torch.all(hyp.attention.masked_select(dead[:, None, :].expand_as(hyp.attention)) == 0)
    sums = hyp.attention.sum(-1)[hyp.tokens != PAD_ID]
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)


def test_unpack_puts_each_field_back_at_its_positions():
    src = torch.tensor([[7, 8, SEP_ID, 9, 10, 11], [7, SEP_ID, 12, PAD_ID, PAD_ID, PAD_ID]])
    fields = field_ids(src, src != PAD_ID)
    assert fields.tolist() == [[0, 0, -1, 1, 1, 1], [0, -1, 1, -1, -1, -1]]
    ids, mask, within, sel = unpack_field(src, fields, 1)
    assert ids.tolist() == [[9, 10, 11], [12, PAD_ID, PAD_ID]]
    assert mask.sum(1).tolist() == [3, 1]
    assert ids.gather(1, within)[sel].tolist() == src[sel].tolist()


def test_shared_encoder_has_one_encoder_and_lstm_states_fuse():
    separate, shared = make("luong", "concat_time"), make("luong", "concat_time", shared=True)
    assert len(separate.encoder.encoders) == 2 and len(shared.encoder.encoders) == 1
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(shared) < count(separate)
    lstm = make("cho", "concat_state", cell="lstm").eval()
    src, mask, *_ = pointer_task(docs=2)
    memory = lstm.encode(src, mask)
    assert memory.final_c is not None and memory.final_c.shape == memory.final_h.shape


def test_gated_fusion_survives_an_empty_field():
    model = make("bahdanau", "gated").eval()
    src = torch.tensor([[13, SEP_ID, 5, 6], [SEP_ID, 5, 6, 7]])  # row 1 has no question
    hyp = greedy(model, src, src != PAD_ID, max_len=3)
    assert torch.isfinite(hyp.scores).all()


def test_unsupported_combinations_name_the_setting():
    with pytest.raises(ValueError, match="gated fusion needs a preset with attention"):
        make("sutskever", "gated")
    cfg = ModelConfig(preset="transformer", fusion=FusionConfig(mode="gated"))
    with pytest.raises(ValueError, match=r"fusion\.mode"):
        build_model(cfg, VOCAB, VOCAB, sources=2)


def test_transformer_reads_packed_fields_through_the_same_search():
    tiny = {"d_model": 16, "heads": 2, "ff_size": 32, "encoder_layers": 1, "decoder_layers": 1}
    cfg = from_dict(
        ModelConfig,
        {"preset": "transformer", "transformer": tiny, "fusion": {"mode": "concat_time"}},
    )
    torch.manual_seed(0)
    model = build_model(cfg, VOCAB, VOCAB, sources=2).eval()
    src, mask, *_ = pointer_task(docs=2)
    hyp = greedy(model, src, mask, max_len=4)
    nb = beam_search(model, src, mask, beam_size=1, max_len=4)
    assert [t[0] for t in nb.tokens] == [
        hyp.tokens[i, : hyp.lengths[i]].tolist() for i in range(len(src))
    ]
    assert torch.all(hyp.attention[:, :, 1] == 0)  # column 1 is <sep> in every row
