"""Tests for transduce.nn.models: every preset learns, compositions build, fast path == steps."""

from __future__ import annotations

import pytest
import torch

from transduce.nn.models import reverse_padded


def step_logits(model, src, src_mask, tgt_in):
    """Teacher-forced logits ``[B, T, V]`` and attention assembled from one ``step`` per token."""
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    logits, attns = [], []
    for t in range(tgt_in.shape[1]):
        features, state, attn = model.step(tgt_in[:, t], state, memory)
        logits.append(model.head(features))
        attns.append(attn)
    attn = None if attns[0] is None else torch.stack(attns, 1)
    return torch.stack(logits, 1), attn


def assert_forward_matches_steps(model, batch):
    with torch.no_grad():
        logits, attn = model.eval()(batch.src, batch.src_mask, batch.tgt_in)
        ref_logits, ref_attn = step_logits(model, batch.src, batch.src_mask, batch.tgt_in)
    assert logits.shape == (*batch.tgt_in.shape, model.head.proj.out_features)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    assert (attn is None) == (ref_attn is None)
    if attn is not None:
        torch.testing.assert_close(attn, ref_attn, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------- learning


def test_preset_overfits_reverse_task(case, trained, task, make_model, exact_match):
    assert exact_match(make_model(*case[:3]), task) < 0.1  # untrained: the task is not free
    assert exact_match(trained(case), task) >= 0.95


REVERSE_SOURCE_CASES = [("sutskever", "lstm", "auto", 100), ("luong", "gru", "general", 100)]


@pytest.mark.parametrize("preset,cell,score,steps", REVERSE_SOURCE_CASES)
def test_reverse_source_still_overfits(
    preset, cell, score, steps, task, make_model, train, exact_match
):
    model = train(make_model(preset, cell, score, reverse_source=True), task, steps)
    assert exact_match(model, task) >= 0.95


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_reverse_source_feeds_the_encoder_reversed_source(cell, bidirectional, task, make_model):
    kwargs = dict(encoder={"bidirectional": bidirectional, "layers": 2})
    backwards = make_model("luong", cell, reverse_source=True, **kwargs)
    forwards = make_model("luong", cell, **kwargs)  # same seed: same weights
    src, mask = task.src, task.src_mask
    lengths = mask.sum(1).tolist()
    flipped = src.clone()
    for i, n in enumerate(lengths):
        flipped[i, :n] = src[i, :n].flip(0)
    with torch.no_grad():
        memory = backwards.encode(src, mask)
        plain = forwards.encoder(flipped, mask)  # reads the reversed source in order
        unreversed = forwards.encode(src, mask)
    torch.testing.assert_close(memory.final_h, plain.final_h, atol=1e-6, rtol=0)
    assert not torch.allclose(memory.final_h, unreversed.final_h, atol=1e-3)
    for i, n in enumerate(lengths):
        # outputs are put back in source order: position j holds what the encoder produced
        # when it read source token j
        torch.testing.assert_close(memory.outputs[i, :n], plain.outputs[i, :n].flip(0))
        assert (memory.outputs[i, n:] == 0).all()


def test_reverse_padded_keeps_padding_at_the_end():
    x = torch.tensor([[4, 5, 6, 0], [7, 8, 0, 0], [9, 0, 0, 0]])
    expected = torch.tensor([[6, 5, 4, 0], [8, 7, 0, 0], [9, 0, 0, 0]])
    assert torch.equal(reverse_padded(x, x != 0), expected)
    assert torch.equal(reverse_padded(expected, x != 0), x)


# ---------------------------------------------------------------------- fast path == steps


FORWARD_CASES = [
    pytest.param(preset, score, feed, id=f"{preset}-{score}-{'feed' if feed else 'nofeed'}")
    for preset, score, feed in [
        ("simple", "auto", False),
        ("sutskever", "auto", False),
        ("cho", "auto", False),
        ("bahdanau", "auto", False),
        *(("luong", s, f) for s in ("dot", "general", "concat") for f in (True, False)),
    ]
]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("preset,score,input_feeding", FORWARD_CASES)
def test_teacher_forced_forward_equals_step_by_step(
    preset, score, input_feeding, cell, task, make_model
):
    model = make_model(
        preset,
        cell,
        score,
        encoder={"layers": 2},
        decoder={"layers": 2},
        attention={"input_feeding": input_feeding},
    )
    # the fused fast path is taken exactly when there is no step-to-step feedback
    assert model.decoder.has_feedback == (preset == "bahdanau" or input_feeding)
    assert_forward_matches_steps(model, task)


# ---------------------------------------------------------------------- compositions


def test_encoder_final_state_is_at_each_sentences_end(task, make_model):
    # Packed sequences: the final state is read at the real end, not after the padding.
    for cell in ("gru", "lstm"):
        for bidirectional in (False, True):
            model = make_model("sutskever", cell, encoder={"bidirectional": bidirectional})
            with torch.no_grad():
                memory = model.encoder(task.src, task.src_mask)
            hidden = 32
            rows = torch.arange(task.src.shape[0])
            last = task.src_mask.sum(1) - 1
            top = memory.final_h[:, -1]  # [B, dirs * H]
            torch.testing.assert_close(top[:, :hidden], memory.outputs[rows, last, :hidden])
            if bidirectional:
                torch.testing.assert_close(top[:, hidden:], memory.outputs[:, 0, hidden:])
            assert (memory.outputs[~task.src_mask] == 0).all()


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_encoder_packed_and_grouped_paths_agree(cell, bidirectional, task, make_model):
    # The encoder runs packed sequences on CUDA and one call per length on CPU; on CPU only
    # the private methods reach the packed path.
    model = make_model("sutskever", cell, encoder={"bidirectional": bidirectional, "layers": 2})
    src = torch.nn.functional.pad(task.src, (0, 2))  # wider than the longest sentence
    mask = src != 0
    with torch.no_grad():
        emb = model.encoder.embed(src)
        packed = model.encoder._run_packed(emb, mask)
        grouped = model.encoder._run_grouped(emb, mask)
    for a, b in zip(packed, grouped, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_unpadded_sources_skip_packing_with_the_same_result(bidirectional, task, make_model):
    # A batch without padding runs the RNN unpacked (packing's per-step slices cost O(S^2) in
    # the backward); its rows must encode exactly as they do inside a padded, packed batch.
    model = make_model("sutskever", "gru", encoder={"bidirectional": bidirectional})
    full = task.src_mask.all(1)
    assert full.any() and not full.all()
    src, mask = task.src[full], task.src_mask[full]
    with torch.no_grad():
        alone = model.encoder(src, mask)
        in_padded = model.encoder(task.src, task.src_mask)
    torch.testing.assert_close(alone.outputs, in_padded.outputs[full], atol=1e-6, rtol=0)
    torch.testing.assert_close(alone.final_h, in_padded.final_h[full], atol=1e-6, rtol=0)


@pytest.mark.parametrize("bridge", ["copy", "linear"])
@pytest.mark.parametrize("depths", [(2, 3), (3, 2)], ids=["enc2-dec3", "enc3-dec2"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("preset", ["sutskever", "cho", "bahdanau", "luong"])
def test_depths_and_bridges_build_and_run(
    preset, cell, bidirectional, depths, bridge, task, make_model
):
    enc_layers, dec_layers = depths
    enc_hidden = 16 if bidirectional else 32  # copy needs dirs * encoder size == decoder size
    model = make_model(
        preset,
        cell,
        encoder={"layers": enc_layers, "bidirectional": bidirectional, "hidden_size": enc_hidden},
        decoder={"layers": dec_layers},
        bridge=bridge,
    )
    assert model.decoder.bridge == bridge
    with torch.no_grad():
        memory = model.encode(task.src, task.src_mask)
        state = model.init_state(memory)
    batch = task.src.shape[0]
    assert memory.final_h.shape == (batch, enc_layers, 32)
    assert state.h.shape == (batch, dec_layers, 32)
    assert (state.c is not None) == (cell == "lstm")
    if bridge == "copy":
        # decoder layer i starts from encoder layer i; top layers if the decoder is shallower,
        # the top layer repeated if it is deeper
        offset = max(enc_layers - dec_layers, 0)
        for i in range(dec_layers):
            j = min(i + offset, enc_layers - 1)
            assert torch.equal(state.h[:, i], memory.final_h[:, j])
            if cell == "lstm":
                assert torch.equal(state.c[:, i], memory.final_c[:, j])
    assert_forward_matches_steps(model, task)


def test_copy_bridge_with_mismatched_sizes_fails_clearly(task, make_model):
    model = make_model("sutskever", encoder={"bidirectional": True}, bridge="copy")
    with pytest.raises(ValueError, match="bridge: linear"):
        model(task.src, task.src_mask, task.tgt_in)


# ---------------------------------------------------------------------- tied embeddings


@pytest.mark.parametrize("preset", ["sutskever", "cho", "bahdanau", "luong"])
def test_tie_embeddings_shares_one_parameter(preset, task, make_model, teacher_forced_loss):
    tied = make_model(preset, "lstm", decoder={"embed_size": 32}, tie_embeddings=True)
    untied = make_model(preset, "lstm", decoder={"embed_size": 32})
    embedding = tied.decoder.embed.embed.weight
    assert tied.head.proj.weight is embedding
    assert len(list(tied.parameters())) == len(list(untied.parameters())) - 1

    # Same numbers in both models: the tied gradient is the sum of the two untied ones.
    untied.load_state_dict(tied.state_dict())
    assert torch.equal(untied.head.proj.weight, untied.decoder.embed.embed.weight)
    teacher_forced_loss(tied, task).backward()
    teacher_forced_loss(untied, task).backward()
    both = untied.head.proj.weight.grad + untied.decoder.embed.embed.weight.grad
    torch.testing.assert_close(embedding.grad, both)

    torch.optim.Adam(tied.parameters(), lr=0.1).step()
    assert tied.head.proj.weight is tied.decoder.embed.embed.weight


def test_tie_embeddings_rejects_impossible_models(make_model):
    with pytest.raises(ValueError, match="token input"):
        make_model("simple", decoder={"embed_size": 32}, tie_embeddings=True)
    with pytest.raises(ValueError, match="embedding size"):
        make_model("sutskever", decoder={"embed_size": 16}, tie_embeddings=True)
