import pytest

from transduce.data.vocab import EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocab


def test_specials_first_and_pad_is_zero():
    v = Vocab.build([["b", "a", "b"], ["c"]])
    assert v.itos[:4] == list(SPECIALS) and PAD_ID == 0
    assert v.itos[4] == "b"  # most frequent first
    assert v.itos[5:] == ["a", "c"]  # ties alphabetical


def test_min_freq_and_max_size():
    seqs = [["a"] * 5, ["b"] * 3, ["c"]]
    assert "c" not in Vocab.build(seqs, min_freq=2).stoi
    assert Vocab.build(seqs, max_size=5).itos == [*SPECIALS, "a"]


def test_encode_unknown_and_decode_stops_at_eos():
    v = Vocab.build([["x", "y"]])
    ids = v.encode(["x", "zzz"])
    assert ids[1] == UNK_ID
    assert v.decode([v.stoi["x"], v.stoi["y"], EOS_ID, v.stoi["x"]]) == ["x", "y"]


def test_json_round_trip(tmp_path):
    v = Vocab.build([list("Πάμε σπίτι")])
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json").itos == v.itos
    assert "Π" in (tmp_path / "v.json").read_text(encoding="utf-8")  # readable, not escaped


def test_rejects_bad_token_list():
    with pytest.raises(ValueError, match="must start with"):
        Vocab(["a", "b"])
