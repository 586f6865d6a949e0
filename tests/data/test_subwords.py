"""sentencepiece subwords: training, round trips in any script, and use in a run."""

import pytest

from tests.helpers import tiny_config, write_tsv
from transduce.config import data_root
from transduce.data.tokenizers import build_tokenizer, train_sentencepiece
from transduce.inference.translate import Translator
from transduce.tasks.train import train

TEXTS = [
    "Πού είναι ο σταθμός;",
    "Είμαι πολύ κουρασμένος σήμερα.",
    "Ein Mann fährt mit dem Fahrrad über die Brücke.",
    "A man rides a bicycle across the bridge.",
    "Дети играют в парке.",
    "子供たちが公園で遊んでいる。",
] * 30


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_round_trip_restores_text_in_any_script(tmp_path, kind):
    train_sentencepiece(TEXTS, kind, 300, tmp_path / "m.model")
    tok = build_tokenizer(kind, model_file=tmp_path / "m.model")
    for text in [*dict.fromkeys(TEXTS), "  extra   spaces  ", "Καλημέρα, κόσμε!"]:
        pieces = tok.encode(text)
        assert tok.decode(pieces) == " ".join(text.split())  # sentencepiece folds spaces
    if kind == "bpe":  # frequent text is merged into pieces longer than a character
        assert len(tok.encode(TEXTS[0])) < len(TEXTS[0])
    assert not list(tmp_path.glob("*.tmp")) and (tmp_path / "m.model").is_file()


def test_training_is_deterministic(tmp_path):
    train_sentencepiece(TEXTS, "bpe", 100, tmp_path / "a.model")
    train_sentencepiece(TEXTS, "bpe", 100, tmp_path / "b.model")
    a = build_tokenizer("bpe", model_file=tmp_path / "a.model").sp
    b = build_tokenizer("bpe", model_file=tmp_path / "b.model").sp
    assert a.get_piece_size() == b.get_piece_size()
    assert [a.id_to_piece(i) for i in range(a.get_piece_size())] == [
        b.id_to_piece(i) for i in range(b.get_piece_size())
    ]


def test_missing_model_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="sentencepiece model not found"):
        build_tokenizer("bpe", model_file=tmp_path / "none.model")
    with pytest.raises(ValueError, match="needs a trained sentencepiece model"):
        build_tokenizer("unigram")


@pytest.mark.parametrize("joint", [False, True])
def test_run_trains_and_stores_subword_models(tmp_path, joint):
    ell = data_root() / "tatoeba" / "ell.txt"
    if not ell.exists():
        pytest.skip("Tatoeba data not found")
    lines = ell.read_text(encoding="utf-8").splitlines()[:600]
    tsv = write_tsv(tmp_path / "ell.tsv", [tuple(x.split("\t")[:2]) for x in lines])
    data = {"src_tokenizer": "bpe", "tgt_tokenizer": "bpe", "vocab_size": 200, "joint_vocab": joint}
    train(tiny_config(tsv, data=data, train={"epochs": 1}), tmp_path / "run")
    names = {p.name for p in (tmp_path / "run").glob("spm.*.model")}
    assert names == ({"spm.joint.model"} if joint else {"spm.src.model", "spm.tgt.model"})
    out = Translator.load(tmp_path / "run").translate_full(["I am hungry.", ""])
    assert out[1].text == "" and isinstance(out[0].text, str)
    assert all(" " not in tok.strip("▁") for tok in out[0].out_tokens)  # pieces, not words


def test_joint_vocab_needs_subwords_on_both_sides(tmp_path):
    tsv = write_tsv(tmp_path / "d.tsv", [("ab", "ba"), ("cd", "dc")] * 10)  # splittable
    data = {"src_tokenizer": "bpe", "tgt_tokenizer": "char", "joint_vocab": True}
    with pytest.raises(ValueError, match="joint_vocab needs the same subword tokenizer"):
        train(tiny_config(tsv, data=data), tmp_path / "run")
