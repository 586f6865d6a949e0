"""Model specs, loading by kind, and the training summary of ``/v1/models``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transduce.config import ConfigError
from transduce.serve.backend import load_models, parse_model_specs, training_summary
from transduce.translate import DecodeOptions


def test_model_specs_name_runs_by_folder_or_given_name(text_run, series_run):
    specs = parse_model_specs([str(text_run), f"fc={series_run}"])
    assert specs == {text_run.name: text_run, "fc": series_run}
    with pytest.raises(ConfigError, match="given twice"):
        parse_model_specs([f"a={text_run}", f"a={series_run}"])
    with pytest.raises(ConfigError, match="not a transduce run"):
        parse_model_specs([f"a={text_run / 'nothing'}"])


def test_kinds_follow_the_config(text_run, series_run):
    models = load_models([f"t={text_run}", f"s={series_run}"])
    assert (models["t"].kind, models["s"].kind) == ("text", "series")
    assert models["t"].decode(["αβ"], DecodeOptions())[0][0].text
    assert models["s"].decode([np.arange(1.0, 20.0)])[0].shape == (6,)


def test_training_summary_takes_the_best_record_and_skips_a_cut_line(tmp_path):
    rows = [
        {"split": "train", "step": 5, "loss": 3.0},
        {"split": "valid", "step": 5, "loss": 2.0, "bleu": 10.0, "seconds": 1.0},
        {"split": "valid", "step": 10, "loss": 2.5, "bleu": 12.0, "seconds": 2.0},
    ]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"split": "valid", "ste'
    (tmp_path / "metrics.jsonl").write_text(text, encoding="utf-8")
    by_loss = training_summary(tmp_path, "loss")
    assert by_loss == {"steps": 10, "best": {"step": 5, "loss": 2.0, "bleu": 10.0}}
    assert training_summary(tmp_path, "bleu")["best"]["step"] == 10
    assert training_summary(tmp_path / "none", "loss") == {}
