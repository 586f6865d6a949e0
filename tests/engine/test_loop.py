"""The loop's contracts: callbacks see every step and validation as metrics.jsonl records
them; a non-finite loss stops the run before it reaches the weights, the checkpoint or
metrics.jsonl."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.engine.callbacks import Callback, NonFiniteError
from transduce.engine.checkpoint import load_trainer_state
from transduce.engine.loop import Loop, default_callbacks
from transduce.engine.run import run, seed_everything
from transduce.nn.models import build_model
from transduce.tasks.text import TextTask
from transduce.tasks.train import prepare_run, train


@pytest.fixture
def tsv(tmp_path):
    return write_tsv(tmp_path / "rev.tsv", reverse_pairs(160))


def _loop(cfg, run_dir, *extra: Callback) -> tuple[Loop, object]:
    seed_everything(cfg.train.seed)
    pipeline, train_data, valid_data, refs = prepare_run(cfg, run_dir, resume=False)
    model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    task = TextTask(cfg, model, pipeline, train_data, valid_data, refs)
    return Loop(cfg, task, run_dir, callbacks=[*default_callbacks(), *extra]), pipeline


def _strict_rows(path):
    """metrics.jsonl, refusing NaN/Infinity (which json.loads would otherwise accept)."""

    def refuse(name):
        raise AssertionError(f"non-finite {name} in {path}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, loop):
        self.events.append(("begin", loop.step))

    def on_step_end(self, loop, loss, ntokens):
        assert math.isfinite(loss) and ntokens > 0
        self.events.append(("step", loop.step))

    def on_epoch_end(self, loop):
        self.events.append(("epoch", loop.epoch))

    def on_validation_end(self, loop, record):
        self.events.append(("valid", dict(record)))

    def on_train_end(self, loop, result):
        self.events.append(("end", result.steps))


def test_callbacks_see_every_step_and_the_validations_metrics_jsonl_holds(tsv, tmp_path):
    cfg = tiny_config(tsv, train={"epochs": 2, "valid_every": 3})
    recorder = Recorder()
    loop, pipeline = _loop(cfg, tmp_path / "run", recorder)
    result = run(loop, resume=False, save=pipeline.save)
    kinds = [e[0] for e in recorder.events]
    assert kinds[0] == "begin" and kinds[-1] == "end" and kinds.count("epoch") == 2
    steps = [e[1] for e in recorder.events if e[0] == "step"]
    assert steps == list(range(1, result.steps + 1))
    seen = [e[1] for e in recorder.events if e[0] == "valid"]
    written = [r for r in _strict_rows(tmp_path / "run" / "metrics.jsonl") if r["split"] == "valid"]
    assert seen == written == result.history
    assert {r["epoch"] for r in seen} == {1, 2}  # one base, from 1, in every record


class Poison(Callback):
    """Sets weight ``which`` of the model's parameters to infinity after step ``at``."""

    def __init__(self, at: int, which: int):
        self.at, self.which = at, which

    def on_step_end(self, loop, loss, ntokens):
        if loop.step == self.at:
            with torch.no_grad():
                list(loop.model.parameters())[self.which].view(-1)[0] = math.inf


# The output bias makes the next loss NaN; the padding row of the source embedding is
# never read, so only the check before writing a checkpoint sees it.
@pytest.mark.parametrize(
    ("which", "message"),
    [
        (-1, r"the loss is nan at step 5; .* stays .*last"),
        (0, r"the weights became non-finite by step 6; .* stays .*last"),
    ],
)
def test_non_finite_values_stop_and_keep_the_last_good_checkpoint(tsv, tmp_path, which, message):
    cfg = tiny_config(tsv, train={"epochs": 3, "valid_every": 3, "keep_checkpoints": 2})
    run_dir = tmp_path / "run"
    loop, pipeline = _loop(cfg, run_dir, Poison(at=4, which=which))
    with pytest.raises(NonFiniteError, match=message):
        run(loop, resume=False, save=pipeline.save)
    assert load_trainer_state(run_dir / "last" / "trainer_state.pt")["counters"][0] == 3
    for name in ("last", "best"):
        weights = load_file(str(run_dir / name / "model.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values()), name
    rows = _strict_rows(run_dir / "metrics.jsonl")
    assert rows and max(r["step"] for r in rows) <= 6
    # The kept checkpoint is a sound place to go on from.
    result = train(out=run_dir, resume=True)
    assert result.steps > 5 and math.isfinite(result.last["loss"])
    assert all(math.isfinite(r["loss"]) for r in _strict_rows(run_dir / "metrics.jsonl"))
