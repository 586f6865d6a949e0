"""One declaration of the decoding options: the command-line flags and the HTTP request
fields are generated from DecodeOptions, and its cross-option rules give the same verdict
through Python, the command line and HTTP; n-best text output; the engine-free writers."""

from __future__ import annotations

import argparse
import io
import sys

import pytest
from pydantic import ValidationError

from transduce.commands.options import add_decode_flags, check_decode_args, flag_name
from transduce.config import ConfigError
from transduce.inference.decoding import (
    DecodeOptions,
    Translation,
    option_fields,
    search_kwargs,
    write_translations,
)
from transduce.serve.schemas import TranslateRequest, http_name


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_decode_flags(p)
    return p


def test_flags_and_request_fields_are_generated_from_the_fields():
    p = _parser()
    dests = {a.dest: a for a in p._actions if a.option_strings and a.dest != "help"}
    flagged = {f.name for f in option_fields() if f.metadata.get("flag", "") is not None}
    assert set(dests) == flagged and "attention" not in flagged  # attention: --format jsonl
    for f in option_fields():
        if f.name in dests:
            assert dests[f.name].default == f.default and dests[f.name].help == f.metadata["help"]
    # per-input data (prefix, constraints) and the transport (stream) are not decoding options
    per_input = {"model", "texts", "return_tokens", "prefix", "constraints", "stream"}
    request = set(TranslateRequest.model_fields) - per_input
    assert request == {http_name(f.name) for f in option_fields()} - {
        "batch_size",
        "max_input_len",
        "on_long_input",
    }
    assert flag_name("alpha") == "--length-penalty" and http_name("alpha") == "length_penalty"


COMBINATIONS = [
    ({"beam": 4, "sample": True}, "beam"),
    ({"sample": True, "no_repeat_ngram": 2}, "no_repeat_ngram"),
    ({"sample": True, "alpha": 0.5}, "alpha"),
    ({"sample": True, "normalize": True}, "normalize"),
    ({"temperature": 0.5}, "temperature"),
    ({"top_k": 3, "seed": 1}, "top_k"),
    ({"top_p": 0.9}, "top_p"),
    ({"nbest": 3, "beam": 2}, "nbest"),
    ({"nbest": 3, "beam": 3}, None),
    ({"nbest": 3, "sample": True, "seed": 2, "top_p": 0.5}, None),
    ({"beam": 5, "alpha": 0.6, "no_repeat_ngram": 3}, None),
]


def _argv(values: dict) -> list[str]:
    argv = []
    for name, value in values.items():
        argv += [flag_name(name)] if value is True else [flag_name(name), str(value)]
    return argv


@pytest.mark.parametrize(("values", "blamed"), COMBINATIONS, ids=str)
def test_python_cli_and_http_agree_on_every_rule(values, blamed):
    request = {"texts": ["a"], **{http_name(k): v for k, v in values.items()}}
    if blamed is None:
        expected = DecodeOptions(**values, attention=False)  # as text output and requests
        assert check_decode_args(_parser().parse_args(_argv(values))) == expected
        assert TranslateRequest(**request).decode_options() == expected
        return
    with pytest.raises(ValueError) as python:
        DecodeOptions(**values)
    assert python.value.field == blamed
    with pytest.raises(ConfigError) as cli:
        check_decode_args(_parser().parse_args(_argv(values)))
    assert str(cli.value).startswith(flag_name(blamed))
    with pytest.raises(ValidationError) as http:
        TranslateRequest(**request)
    assert http.value.errors()[0]["loc"] == (http_name(blamed),)


def test_search_receives_the_options_it_declares():
    from transduce.inference import searchcore as core

    o = DecodeOptions(beam=4, nbest=2, alpha=0.3, no_repeat_ngram=2, attention=False)
    assert search_kwargs(core.beam_search, o) == {
        "beam": 4,
        "nbest": 2,
        "alpha": 0.3,
        "normalize": False,
        "no_repeat_ngram": 2,
        "attention": False,
    }
    s = DecodeOptions(sample=True, nbest=3, top_k=5, seed=1)
    assert set(search_kwargs(core.sample, s)) == {
        "nbest",
        "temperature",
        "top_k",
        "top_p",
        "seed",
        "attention",
    }


def _hyp(text: str) -> Translation:
    return Translation(text, [], [], 0.0, None, 0.0)


def test_nbest_text_output_is_one_numbered_line_per_hypothesis(monkeypatch):
    results = [[_hyp("a1"), _hyp("a2")], [_hyp("")], [_hyp("c1"), _hyp("c2")]]
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    write_translations(["x", "", "z"], [results[:2], results[2:]], None, "text", nbest=2)
    lines = out.getvalue().splitlines()
    assert lines == ["1\ta1", "1\ta2", "2\t", "3\tc1", "3\tc2"]  # line numbers run on
    out.seek(0), out.truncate()
    write_translations(["x", "", "z"], [[r[:1] for r in results]], None, "text")
    assert out.getvalue() == "a1\n\nc1\n"  # one line per input, as without --nbest


@pytest.mark.parametrize("texts", ["26.5.2018", [b"26.5"], [None], None, {"a": 1}])
def test_texts_that_are_not_a_list_of_strings_are_refused(texts):
    """A bare string had been decoded character by character, bytes item by item."""
    from transduce.inference.textdecoder import check_texts

    with pytest.raises(TypeError, match=r"texts(\[0\])?: a (list of )?string"):
        check_texts(texts)
