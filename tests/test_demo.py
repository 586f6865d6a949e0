"""The demo end to end on a smaller budget: data, training, held-out test, picture."""

from transduce.demo import run_demo


def test_demo_learns_dates_and_draws(tmp_path, capsys):
    summary = run_demo(
        tmp_path / "demo",
        n_train=3000,
        n_test=300,
        overrides={"train": {"epochs": 3, "progress": False, "valid_max": 200}},
    )
    out = capsys.readouterr().out
    assert "held-out exact match:" in out and "(n=300)" in out
    # A fraction of the real demo's data and steps already gets most dates right.
    assert summary["exact"] >= 0.5, summary
    png = tmp_path / "demo" / "attention.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "demo" / "run" / "model.safetensors").is_file()
