"""The training objective: summed losses and counts, padding vs class 0, label smoothing
only in training, and the sum the gradient normalisation relies on."""

import torch
import torch.nn.functional as F

from transduce.config import DecoderConfig, EncoderConfig, ModelConfig
from transduce.data.batches import Batch
from transduce.engine.objective import Objective
from transduce.nn.models import build_model


def _model():
    torch.manual_seed(0)
    cfg = ModelConfig(
        preset="luong", cell="gru", encoder=EncoderConfig(8, 16), decoder=DecoderConfig(8, 16)
    )
    return build_model(cfg, 10, 10)


def _batch():
    src = torch.tensor([[4, 5, 6], [7, 8, 0]])
    tgt_in = torch.tensor([[1, 6, 5, 4], [1, 8, 7, 0]])
    tgt_out = torch.tensor([[6, 5, 4, 2], [8, 7, 2, 0]])
    return Batch(src, tgt_in, tgt_out, torch.arange(2))


def test_token_loss_is_the_sum_over_real_tokens_and_counts_correct_ones():
    model, batch = _model().eval(), _batch()
    loss, correct = Objective(model, "tokens").eval()(batch)
    logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)
    flat, gold = logits.reshape(-1, 10), batch.tgt_out.reshape(-1)
    real = gold != 0
    torch.testing.assert_close(loss, F.cross_entropy(flat[real], gold[real], reduction="sum"))
    assert int(correct) == int((flat.argmax(-1)[real] == gold[real]).sum())


def test_label_smoothing_only_in_training_and_class_zero_counts_for_crossentropy():
    model, batch = _model(), _batch()
    smooth = Objective(model, "tokens", label_smoothing=0.1)
    trained, none = smooth.train()(batch)
    evaluated, _ = smooth.eval()(batch)
    assert none is None and float(trained.detach()) > float(evaluated.detach())
    plain, _ = Objective(model, "tokens").eval()(batch)
    classes, _ = Objective(model, "crossentropy").eval()(batch)
    # the padded position is a class-0 target there
    assert float(classes.detach()) > float(plain.detach())
