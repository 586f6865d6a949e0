import json
import warnings

import numpy as np
import pytest
import torch

from transduce.commands.plots import (
    plot_attention,
    plot_learning_curves,
    read_metrics,
    visible_token,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000 and data.startswith(PNG_MAGIC)


def _missing_glyph_warnings(draw) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def _write_metrics(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_attention_writes_png_from_numpy_and_torch(tmp_path):
    src, out = ["a", "b", "c"], ["x", "y"]
    weights = np.full((2, 3), 1 / 3)
    written = plot_attention(weights, src, out, tmp_path / "np.png", title="t")
    assert written == tmp_path / "np.png"
    _assert_png(written)
    grad = torch.softmax(torch.randn(2, 3, requires_grad=True), dim=-1)
    _assert_png(plot_attention(grad, src, out, tmp_path / "sub" / "torch.png"))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["np.png", "sub", "torch.png"]


def test_attention_rejects_mismatched_shape(tmp_path):
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        plot_attention(np.zeros((3, 2)), ["a", "b", "c"], ["x", "y"], tmp_path / "a.png")
    assert not list(tmp_path.iterdir())


def test_figure_grows_with_tokens(tmp_path):
    from PIL import Image

    small = plot_attention(np.eye(3), list("abc"), list("abc"), tmp_path / "s.png")
    large = plot_attention(np.eye(40), ["tok"] * 40, ["tok"] * 40, tmp_path / "l.png")
    with Image.open(small) as a, Image.open(large) as b:
        assert b.size[0] > 2 * a.size[0] and b.size[1] > 2 * a.size[1]


def test_whitespace_tokens_are_visible():
    assert visible_token(" ") == "␣"
    assert visible_token("a b\n") == "a␣b↵"
    assert visible_token("") == "∅"
    assert visible_token("Πάμε") == "Πάμε"


def test_greek_renders_without_missing_glyphs(tmp_path):
    src = ["Πάμε", " ", "σπίτι", "Ωραία", "</s>"]
    out = ["Let's", " ", "go", "home", "</s>"]
    weights = np.random.default_rng(0).dirichlet(np.ones(len(src)), size=len(out))
    path = tmp_path / "greek.png"
    missing = _missing_glyph_warnings(
        lambda: plot_attention(weights, src, out, path, title="Πάμε σπίτι")
    )
    assert missing == []
    _assert_png(path)


def test_missing_glyphs_would_be_caught(tmp_path):
    # A private-use code point is in no font: proves the check above can fail.
    missing = _missing_glyph_warnings(
        lambda: plot_attention(np.ones((1, 1)), ["\ue000"], ["x"], tmp_path / "pua.png")
    )
    assert missing


def test_learning_curves_writes_png(tmp_path):
    lines = []
    for step in range(0, 500, 50):
        train = {"step": step, "epoch": 0, "split": "train", "loss": 3 - step / 250}
        lines.append(json.dumps(train))
        if step % 100 == 0:
            valid = {"loss": 2.5, "acc": 0.5, "exact": 0.2, "bleu": 30.0, "ppl": 12.0}
            lines.append(json.dumps({"step": step, "epoch": 0, "split": "valid", **valid}))
    metrics = _write_metrics(tmp_path / "metrics.jsonl", [*lines, ""])
    written = plot_learning_curves(metrics, tmp_path / "curves.png", title="run")
    assert written == tmp_path / "curves.png"
    _assert_png(written)


def test_learning_curves_with_only_loss(tmp_path):
    metrics = _write_metrics(tmp_path / "m.jsonl", ['{"step": 1, "split": "train", "loss": 1.0}'])
    _assert_png(plot_learning_curves(metrics, tmp_path / "c.png"))


def test_learning_curves_bad_line_names_file_and_line(tmp_path):
    metrics = _write_metrics(
        tmp_path / "metrics.jsonl",
        ['{"step": 1, "split": "train", "loss": 1.0}', "{not json", '{"step": 2}'],
    )
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2"):
        plot_learning_curves(metrics, tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_read_metrics_rejects_non_objects_and_empty_runs(tmp_path):
    metrics = _write_metrics(tmp_path / "m.jsonl", ['{"step": 1, "loss": 1.0}', "[1, 2]"])
    with pytest.raises(ValueError, match=r"m\.jsonl:2"):
        read_metrics(metrics)
    empty = _write_metrics(tmp_path / "e.jsonl", ['{"step": 1, "lr": 0.1}'])
    with pytest.raises(ValueError, match="none of the metrics"):
        plot_learning_curves(empty, tmp_path / "c.png")


def test_unreadable_or_missing_metrics_and_unknown_formats_name_the_file(tmp_path):
    from transduce.errors import DataError

    binary = tmp_path / "metrics.jsonl"
    binary.write_bytes(b'{"step": 1}\n\x8c\xff\n')
    with pytest.raises(DataError, match=r"metrics\.jsonl:2: invalid UTF-8"):
        read_metrics(binary)  # it said only "'utf-8' codec can't decode byte 0x8c"
    with pytest.raises(DataError, match=r"none\.jsonl: file not found"):
        read_metrics(tmp_path / "none.jsonl")
    with pytest.raises(DataError, match=r"out/a\.txt: a \.txt image cannot be written: use"):
        plot_attention(np.ones((2, 2)), ["a", "b"], ["c", "d"], tmp_path / "out" / "a.txt")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- readable labels


def test_source_labels_are_horizontal_and_the_field_tab_is_visible(tmp_path):
    from transduce.commands.plots import attention_figure

    src = [*"Κυριακή", "<sep>", "what"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (the tab) warns
        fig = attention_figure(np.full((2, len(src)), 0.1), src, ["a", "b"], "q ?\tdoc → a")
        plot_attention(np.full((2, len(src)), 0.1), src, ["a", "b"], tmp_path / "a.png", "q ?\tdoc")
    ax = fig.axes[0]
    assert all(label.get_rotation() == 0 for label in ax.get_xticklabels())
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["Κ", "υ"]
    assert ax.get_title() == "q ? ⇥ doc → a"


def test_a_single_training_point_is_drawn():
    from transduce.commands.plots import curves_figure

    fig = curves_figure([{"step": 5, "split": "train", "loss": 2.0}])
    (line,) = fig.axes[0].get_lines()
    assert line.get_marker() not in (None, "None", "", " ")
    two = curves_figure([{"step": s, "split": "train", "loss": 2.0} for s in (1, 2)])
    assert two.axes[0].get_lines()[0].get_marker() in (None, "None", "", " ")
