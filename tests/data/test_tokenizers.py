import pytest

from transduce.data.tokenizers import build_tokenizer


def test_char_round_trip_any_script():
    tok = build_tokenizer("char")
    for text in ["I am hungry.", "Πεινάω.", "  spaces  ", "日本語"]:
        assert tok.decode(tok.encode(text)) == text


def test_word_tokens_and_detokenization():
    tok = build_tokenizer("word")
    assert tok.encode("Hello, world! It's fine.") == [
        "Hello",
        ",",
        "world",
        "!",
        "It's",
        "fine",
        ".",
    ]
    assert (
        tok.decode(tok.encode("Hello, world! It's (very) fine."))
        == "Hello, world! It's (very) fine."
    )
    assert tok.encode("Είμαι εδώ.") == ["Είμαι", "εδώ", "."]


def test_lowercase_option():
    assert build_tokenizer("char", lowercase=True).encode("AbΓ") == ["a", "b", "γ"]


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown tokenizer"):
        build_tokenizer("bytes")
