"""Typed configuration: YAML in, nested frozen dataclasses out, YAML back.

Every section is a frozen dataclass. Loading rejects unknown keys and values of the
wrong type or outside a ``Literal`` choice, naming the key by its dotted path
(``model.decoder.hidden_size``). ``--set a.b=v`` overrides go through the same checks.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# The checks and the bounded YAML reader live in their own modules; their public names
# are re-exported here, where callers have always found them.
from transduce.configcheck import RANGES as RANGES
from transduce.configcheck import ConfigError as ConfigError
from transduce.configcheck import clip as clip
from transduce.configcheck import cut as cut
from transduce.configcheck import from_dict as from_dict
from transduce.safeyaml import MAX_YAML_DEPTH as MAX_YAML_DEPTH
from transduce.safeyaml import MAX_YAML_ITEMS as MAX_YAML_ITEMS
from transduce.safeyaml import YAMLTooLarge as YAMLTooLarge
from transduce.safeyaml import compose_yaml as compose_yaml
from transduce.safeyaml import load_yaml as load_yaml
from transduce.safeyaml import one_line

# A config is a few hundred items: a larger file is something else (or an endless stream).
MAX_CONFIG_BYTES = 1 << 20

Cell = Literal["rnn", "gru", "lstm"]
Preset = Literal["simple", "sutskever", "cho", "bahdanau", "luong", "transformer"]


@dataclass(frozen=True)
class CorpusConfig:
    """One training corpus of several (``data.train`` as a list), sampled by ``weight``."""

    path: str = ""  # tsv file (format: tsv)
    src: str = ""  # line-aligned files (format: pairs)
    tgt: str = ""
    weight: float = 1.0  # share of each epoch's pairs: weight / sum of the weights


@dataclass(frozen=True)
class DataConfig:
    """Where the text comes from and how it becomes token ids."""

    format: Literal["tsv", "pairs", "jsonl", "chatterbot"] = "tsv"
    # tsv file (format: tsv), or a list of corpora with sampling weights (a prepared store)
    train: str | tuple[CorpusConfig, ...] = ""
    train_src: str = ""  # line-aligned files (format: pairs), plain or .gz
    train_tgt: str = ""
    valid: str = ""
    valid_src: str = ""
    valid_tgt: str = ""
    src_col: int = 0  # tsv column of the source (0-based)
    tgt_col: int = 1
    # Named fields (jsonl keys, or tsv header columns): several source fields make a
    # multi-input model (transduce/data/records.py); chatterbot: a folder of *.yml files.
    src_fields: tuple[str, ...] = ()
    tgt_field: str = ""
    limit: int | None = None  # read only the first N lines of the training file
    valid_fraction: float = 0.1  # used when no validation file is given
    split: Literal["by_source", "tail"] = "by_source"  # tail = Keras validation_split
    split_seed: int = 1234
    on_bad_line: Literal["error", "skip"] = "error"
    src_tokenizer: Literal["char", "word", "bpe", "unigram"] = "char"
    tgt_tokenizer: Literal["char", "word", "bpe", "unigram"] = "char"
    vocab_size: int = 8000  # sentencepiece pieces per model (bpe / unigram)
    joint_vocab: bool = False  # one sentencepiece model trained on both sides' text
    lowercase: bool = False
    min_freq: int = 1
    max_vocab: int | None = None
    max_src_len: int | None = 512  # tokens; longer pairs (train and valid) are dropped and
    max_tgt_len: int | None = 512  # counted per split (None: no limit)
    spm_sample: int = 1_000_000  # sentences per side sentencepiece trains on (seeded sample)
    # A prepared corpus store (transduce prepare): its folder, or "auto" to build one on
    # first use in the data cache, keyed by the inputs and these settings; "" reads the
    # text into memory at every start (the small corpora).
    prepared: str = ""


@dataclass(frozen=True)
class EncoderConfig:
    embed_size: int = 256
    hidden_size: int = 256
    layers: int = 1
    bidirectional: bool | None = None  # None = the preset's choice (bahdanau: true)
    dropout: float = 0.0  # between stacked layers


@dataclass(frozen=True)
class DecoderConfig:
    embed_size: int = 256
    hidden_size: int = 256
    layers: int = 1
    dropout: float = 0.0  # between stacked layers
    readout_size: int | None = None  # size of the pre-softmax layer; default hidden_size


@dataclass(frozen=True)
class AttentionConfig:
    score: Literal["auto", "dot", "general", "concat", "additive"] = "auto"  # auto: per preset
    input_feeding: bool = True  # Luong et al. 2015, section 3.3
    window: Literal["global", "local-m", "local-p"] = "global"  # Luong et al. 2015, 3.2
    width: int = 10  # D: local windows cover [p_t - D, p_t + D]
    size: int | None = None  # additive/concat hidden size; default decoder hidden size


@dataclass(frozen=True)
class TransformerConfig:
    d_model: int = 256
    heads: int = 4
    ff_size: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0
    pre_norm: bool = True  # False: the original post-norm layers
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = 1024  # learned positions only


@dataclass(frozen=True)
class FusionConfig:
    """How several source fields meet before decoding (transduce/nn/multisource.py)."""

    mode: Literal["concat_time", "concat_state", "gated"] = "concat_time"
    shared_encoder: bool = False  # one encoder for every field (field markers tell them apart)


@dataclass(frozen=True)
class ModelConfig:
    preset: Preset = "bahdanau"
    cell: Cell = "gru"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)  # preset only
    bridge: Literal["auto", "none", "copy", "linear"] = "auto"
    reverse_source: bool = False  # Sutskever et al. 2014 reverse the source words
    embed_dropout: float = 0.0
    spatial_dropout: bool = False  # drop whole embedding channels (SpatialDropout1D)
    output_dropout: float = 0.0  # before the vocabulary projection
    tie_embeddings: bool = False  # share target embedding and output projection
    fusion: FusionConfig = field(default_factory=FusionConfig)  # data.src_fields > 1 only


@dataclass(frozen=True)
class TrainConfig:
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.0  # sgd only
    adam_beta2: float = 0.999  # transformers usually train with 0.98
    batch_size: int = 64
    epochs: int = 10
    max_steps: int | None = None  # stop after this many updates (overrides epochs)
    max_seconds: float | None = None  # stop after this much training time
    max_tokens: int | None = None  # token budget per batch (padded); overrides batch_size
    lr_schedule: Literal["constant", "plateau", "inverse_sqrt", "cosine"] = "constant"
    warmup_steps: int = 0
    lr_min: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 1  # validations without improvement before the lr drops
    # auto: device.choose_precision; fp16: autocast with a gradient scaler (CUDA)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    keep_checkpoints: int = 0  # keep the last N validation checkpoints (for averaging)
    clip_norm: float | None = 1.0
    label_smoothing: float = 0.0
    teacher_forcing: float = 1.0  # probability of feeding the gold token
    teacher_forcing_schedule: Literal["constant", "linear", "inverse_sigmoid", "exponential"] = (
        "constant"
    )
    teacher_forcing_min: float = 0.0
    teacher_forcing_k: float = 1000.0  # schedule speed (steps for linear; k of Bengio et al.)
    valid_every: int = 0  # steps between validations; 0 = once per epoch
    valid_exact: bool = True  # greedy-decode the validation set for exact match
    valid_bleu: bool = False  # ... and score it with sacrebleu BLEU
    valid_max: int | None = None  # decode at most this many validation examples
    patience: int | None = None  # early stopping: validations without improvement
    early_stop_metric: Literal["loss", "acc", "exact", "bleu"] = "loss"
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0  # 0 = torch default
    bucket: bool = True  # group sentences of similar length into batches
    bucket_by: Literal["source", "target"] = "source"  # target: less decoder padding (GRU)
    log_every: int = 50
    progress: bool = True
    accumulate_steps: int = 1  # batches per update (gradient accumulation)
    tensorboard: bool = False  # event files under RUN/tensorboard (extra "tensorboard")
    find_unused_parameters: bool = False  # DDP: some parameter may get no gradient on a rank
    compile: bool = False  # torch.compile the training objective (see the README's speed table)


@dataclass(frozen=True)
class DecodeConfig:
    max_len: int = 200  # absolute cap on output length
    max_len_ratio: float | None = None  # per sentence: ceil(ratio * source length) + 5
    batch_size: int = 128
    max_input_len: int | None = 1024  # source tokens per line at inference (None: no limit)
    on_long_input: Literal["truncate", "skip", "error"] = "truncate"  # with a warning each


@dataclass(frozen=True)
class SeriesConfig:
    """Real-valued series instead of text (``data`` is then unused); see data/series.py."""

    format: Literal["auto", "m4", "long"] = "auto"
    train: str = ""  # series file (M4 wide CSV or id,timestamp,value)
    test: str = ""  # optional actuals following each training series, scored after training
    on_bad_line: Literal["error", "skip"] = "error"
    horizon: int = 48
    lookback: int = 168
    period: int = 24  # seasonal period: MASE scale, level window, calendar phase
    scaling: Literal["log", "level", "none"] = "log"  # per-window, by the last season's mean
    calendar: bool = True  # (sin, cos) of the phase relative to the series end
    seasonal: bool = False  # decoder sees last-season and mean-season values of each step
    stride: int = 24  # steps between consecutive training windows of a series
    holdout: int | None = None  # validation: the last N values of each series (default horizon)
    loss: Literal["mae", "mse", "huber"] = "mae"  # on the scaled values
    # interval levels (percent) the model learns as quantiles under the pinball loss, each
    # conformally calibrated on the validation windows; empty: point forecasts only
    levels: tuple[float, ...] = ()
    covariates: tuple[str, ...] = ()  # future-known columns of a long table (encoder+decoder)
    past_covariates: tuple[str, ...] = ()  # columns observed only up to the origin (encoder)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    series: SeriesConfig | None = None  # set: a forecasting run


def to_dict(cfg: Any) -> dict[str, Any]:
    """Every field written out, defaults included (the resolved config); tuples as lists."""
    return dataclasses.asdict(cfg, dict_factory=_plain_dict)


def _plain_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) to a nested dict copy."""
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {cut(item)}: expected KEY=VALUE, e.g. train.lr=0.001")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"--set {clip(key)}: {clip(part)} is {cut(node)}, not a section (an earlier "
                    "--set or the file gave it a value)"
                )
        try:
            node[parts[-1]] = load_yaml(raw, "--set value") if raw.strip() else ""
        except yaml.YAMLError as err:
            problem = one_line(err)
            raise ConfigError(
                f"--set {clip(item)}: the value is not valid YAML: {problem}"
            ) from None
    return data


def read_config_data(path: str | os.PathLike) -> dict[str, Any]:
    """A config file's mapping, unchecked (within 1 MiB, bounded YAML): a missing, empty,
    non-YAML or non-mapping file is a ConfigError naming it."""
    text = _read_config_text(path)
    if not text.strip():
        raise ConfigError(f"{path}: empty config file")
    try:
        data = load_yaml(text, os.fspath(path)) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {one_line(err)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def load_config(path: str | os.PathLike | None = None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (or start from defaults) and apply ``--set`` overrides."""
    data = read_config_data(path) if path is not None else {}
    try:
        return from_dict(Config, apply_overrides(data, list(overrides)))
    except ConfigError as err:
        if path is None or not _file_says(data):
            raise  # a --set override's mistake: it names its flag
        raise ConfigError(f"{path}: {err}") from None


def _file_says(data: dict[str, Any]) -> bool:
    """Whether the config file alone (no overrides) is refused: its mistake, to name it."""
    try:
        from_dict(Config, data)
    except ConfigError:
        return True
    return False


def _read_config_text(path: str | os.PathLike) -> str:
    """At most MAX_CONFIG_BYTES of UTF-8 (an endless stream such as /dev/zero stops there)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: over {MAX_CONFIG_BYTES:,} bytes: not a config file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason})") from None


def load_run_config(run_dir: str | os.PathLike) -> Config:
    """The config saved in a run directory; a directory without one is not a run."""
    path = Path(run_dir, "config.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"{Path(run_dir)}: not a transduce run (no config.yaml)")
    return load_config(path)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    from transduce.engine.checkpoint import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))


def default_data_dir() -> Path:
    """Where ``transduce data get`` installs by default: ``$XDG_CACHE_HOME/transduce/data``,
    or ``~/.cache/transduce/data``."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache, "transduce", "data")


def data_root() -> Path:
    """``$TRANSDUCE_DATA``, else ``../shared/data`` from the working directory or beside
    this source checkout, else :func:`default_data_dir` (where ``transduce data get`` puts
    the corpora)."""
    if os.environ.get("TRANSDUCE_DATA"):
        return Path(os.environ["TRANSDUCE_DATA"])
    for shared in (
        Path("..", "shared", "data"),
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ):
        if shared.exists():
            return shared
    return default_data_dir()


def data_path(path: str) -> Path:
    """Expand ``${TRANSDUCE_DATA}`` (see :func:`data_root`) and ``~`` in a data path."""
    if "TRANSDUCE_DATA" in path:
        root = str(data_root())
        path = path.replace("${TRANSDUCE_DATA}", root).replace("$TRANSDUCE_DATA", root)
    return Path(os.path.expanduser(path))


def run_data_files(model_dir: str | os.PathLike) -> list[Path]:
    """The data files a training run's config.yaml names (its training, validation and
    test files): an output may not replace them, since resuming, backtesting or
    retraining the run reads them again. An export, or a folder that is no run: none."""
    try:
        cfg = load_run_config(model_dir)
    except Exception:  # not a run (an export), or one the load will name itself
        return []
    d, named = cfg.data, []
    corpora = d.train if isinstance(d.train, tuple) else ()
    named += [d.train] if isinstance(d.train, str) else []
    named += [p for c in corpora for p in (c.path, c.src, c.tgt)]
    named += [d.train_src, d.train_tgt, d.valid, d.valid_src, d.valid_tgt]
    if cfg.series is not None:
        named += [cfg.series.train, cfg.series.test]
    return [data_path(p) for p in named if p]
