import re

import pytest

from transduce.config import Config, ConfigError, load_config, save_config


def test_defaults_round_trip(tmp_path):
    cfg = load_config(None, ["model.preset=luong", "model.decoder.hidden_size=64"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert again.model.decoder.hidden_size == 64
    assert isinstance(again, Config)


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("model:\n  decoder:\n    hiden_size: 3\n", "model.decoder.hiden_size: unknown key"),
        ("model:\n  preset: bahdanou\n", "model.preset: 'bahdanou' is not one of"),
        ("train:\n  lr: fast\n", "train.lr: expected a number"),
        ("train:\n  epochs: 2.5\n", "train.epochs: expected an integer"),
        ("train:\n  progress: 1\n", "train.progress: expected true/false"),
        ("model: 3\n", "model: expected a mapping"),
        ("- a\n", "top level must be a mapping"),
        # PyYAML keeps the last of two, and the first section was gone without a word
        ("train:\n  lr: 0.1\ntrain:\n  epochs: 2\n", "the key 'train' appears twice at line 3"),
        ("train:\n  lr: 0.1\n  lr: 0.2\n", "the key 'lr' appears twice at line 3"),
    ],
)
def test_bad_config_names_the_key(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(path)


def test_set_overrides_are_type_checked():
    cfg = load_config(None, ["train.lr=0.5", "train.max_steps=7", "data.limit=null"])
    assert cfg.train.lr == 0.5 and cfg.train.max_steps == 7 and cfg.data.limit is None
    with pytest.raises(ConfigError, match=r"model\.decoder\.hidden_size: expected an integer"):
        load_config(None, ["model.decoder.hidden_size=big"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match=r"train\.nope: unknown key"):
        load_config(None, ["train.nope=1"])


def test_configs_in_repo_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parents[1].glob("configs/*.yaml")):
        assert isinstance(load_config(path), Config), path


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_bad_value_in_a_config_file_names_the_file_an_override_its_flag(tmp_path):
    bad = tmp_path / "run" / "config.yaml"  # e.g. a run's config, edited by hand
    bad.parent.mkdir()
    bad.write_text("model:\n  encoder:\n    hidden_size: abc\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad))}: model.encoder.hidden_size"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  encoder:\n    hidden_size: 8\n")
    with pytest.raises(ConfigError, match=r"^model.encoder.hidden_size: expected an integer"):
        load_config(good, ["model.encoder.hidden_size=abc"])


@pytest.mark.parametrize(
    "setting",
    ["series.stride=0", "series.stride=-1", "series.holdout=-5", "data.split_seed=-1",
     "data.spm_sample=-1"],
)  # fmt: skip
def test_window_stride_holdout_and_data_seeds_are_bounded(setting):
    """stride 0 raised range()'s 'arg 3 must not be zero' naming no key, -1 said no
    series was long enough; a negative holdout leaked numpy's text; split_seed and
    spm_sample took any negative number."""
    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: -?\d+ is out of range"):
        load_config(None, [setting])


def test_threads_and_seed_are_bounded_and_exponents_read_as_numbers(tmp_path):
    # threads 100,000 crashed torch (exit 139); a bad seed named no key; lr: 1e-3 is text
    # to YAML 1.1 and was refused as "expected a number"
    with pytest.raises(ConfigError, match=r"train.threads: 100000 is out of range \[0, 1,024\]"):
        load_config(None, ["train.threads=100000"])
    with pytest.raises(ConfigError, match=r"train.seed: -5 is out of range"):
        load_config(None, ["train.seed=-5"])
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n  clip_norm: 5E+0\n")
    cfg = load_config(path, ["train.max_seconds=2e1"])
    assert (cfg.train.lr, cfg.train.clip_norm, cfg.train.max_seconds) == (0.001, 5.0, 20.0)
    with pytest.raises(ConfigError, match="expected a number"):
        load_config(None, ["train.lr=1_0e-3"])


def test_a_set_over_a_section_names_the_section_it_made_a_value():
    # it said "train is not a section", naming the later key and not the value set before
    with pytest.raises(ConfigError, match=r"train\.max_steps: train is 5, not a section"):
        load_config(None, ["train=5", "train.max_steps=2"])
