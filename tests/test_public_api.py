"""The public surface: everything in ``transduce.__all__`` imports from ``transduce``, the
names the README uses are there, and the torch module and the estimator have distinct names."""

import warnings

import pytest

import transduce
from transduce import estimators


def test_every_public_name_imports():
    for name in transduce.__all__:
        assert getattr(transduce, name) is not None, name


def test_readme_names_are_public():
    from transduce import (  # noqa: F401
        DecodeOptions,
        Translation,
        Translator,
        beam_search,
        build_model,
        greedy,
        load_config,
        sample,
        train,
    )

    assert DecodeOptions(beam=5, nbest=3).nbest == 3


def test_model_and_estimator_have_distinct_names():
    assert transduce.Seq2SeqModel.__name__ == "Seq2SeqModel"
    assert estimators.Seq2Seq.__name__ == "Seq2Seq"
    assert transduce.Seq2SeqModel is not estimators.Seq2Seq
    assert "Seq2Seq" not in transduce.__all__


def test_old_top_level_name_still_works_with_a_warning():
    with pytest.warns(DeprecationWarning, match="Seq2SeqModel"):
        old = transduce.Seq2Seq
    assert old is transduce.Seq2SeqModel
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from transduce.nn.models import Seq2Seq  # internal alias, no warning

        assert Seq2Seq is transduce.Seq2SeqModel


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        transduce.no_such_name  # noqa: B018


def test_version_matches_the_package_metadata():
    from importlib.metadata import version

    assert transduce.__version__ == version("transduce")
