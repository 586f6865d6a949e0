"""The decoder's hoisted teacher-forced loop against the step function it speeds up."""

import pytest
import torch
import torch.nn.functional as F

from transduce.data.vocab import PAD_ID


def _grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_hoisted_attention_first_unroll_has_the_step_loops_gradients(
    cell, layers, task, make_model, monkeypatch
):
    model = make_model("bahdanau", cell, decoder={"layers": layers}, seed=3).train()
    calls = []
    hoisted = type(model.decoder)._unroll_attention_first
    monkeypatch.setattr(
        type(model.decoder), "_unroll_attention_first", lambda *a: calls.append(1) or hoisted(*a)
    )
    target = task.tgt_out.flatten()

    def loss(logits):
        return F.cross_entropy(logits.flatten(0, 1), target, ignore_index=PAD_ID)

    fast = _grads(model, loss(model(task.src, task.src_mask, task.tgt_in)[0]))
    assert calls, "the teacher-forced forward did not take the hoisted path"
    memory = model.encode(task.src, task.src_mask)
    state, logits = model.init_state(memory), []
    for t in range(task.tgt_in.shape[1]):  # the step function: the plain cell kernels
        features, state, _ = model.step(task.tgt_in[:, t], state, memory)
        logits.append(model.head(features))
    slow = _grads(model, loss(torch.stack(logits, 1)))
    assert fast.keys() == slow.keys() and len(fast) == len(list(model.parameters()))
    for name in fast:
        torch.testing.assert_close(fast[name], slow[name], atol=1e-6, rtol=1e-4, msg=name)
