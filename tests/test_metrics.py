"""QA exact match / token F1 and ROUGE (rouge-score): invariants, not magic numbers."""

from __future__ import annotations

import pytest

from transduce.metrics import normalize_answer, rouge_scores, squad_scores


def test_squad_normalisation_ignores_case_articles_and_punctuation():
    assert normalize_answer("The  Blue, car!") == "blue car"
    assert squad_scores(["The blue car."], ["blue car"]) == {"em": 100.0, "f1": 100.0}


def test_token_f1_gives_partial_credit_and_em_none():
    scores = squad_scores(["a man in red"], ["a man in a blue shirt"])
    assert scores["em"] == 0.0 and 0.0 < scores["f1"] < 100.0
    assert squad_scores(["dog"], ["cat"]) == {"em": 0.0, "f1": 0.0}


def test_rouge_identity_and_order():
    refs = ["man standing cleaning window", "dog running"]
    assert rouge_scores(refs, refs) == {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0}
    shuffled = rouge_scores(["window cleaning standing man", "dog running"], refs)
    assert shuffled["rouge1"] == 100.0 and shuffled["rougeL"] < 100.0
    with pytest.raises(ValueError):
        rouge_scores(["x"], [])
