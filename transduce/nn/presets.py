"""The named presets, one registry (ARCHITECTURE §3): each builds a :class:`Seq2Seq` by
composition from an encoder, a decoder and a head, all chosen before construction.

``PRESETS[name](cfg, src_vocab_size, tgt_vocab_size, ...)``; the RNN presets differ only in
their decoder settings (:data:`RNN_VARIANTS`), the transformer has its own parts. Callers
may hand in the input embeddings and the head (``src_embed``, ``tgt_embed``, ``make_head``):
real-valued sequences use value embeddings and a regression head this way
(:func:`transduce.nn.models.build_value_model`), nothing is swapped after construction.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from torch import nn

from transduce.config import ModelConfig
from transduce.nn.attention import LocalWindow, build_scorer
from transduce.nn.decoders import RNNDecoder
from transduce.nn.encoders import RNNEncoder
from transduce.nn.heads import VocabHead
from transduce.nn.seq2seq import Seq2Seq
from transduce.nn.transformer import TransformerDecoder, TransformerEncoder

# Each returns the decoder settings that make the variant; everything else is shared.


def _simple(cfg: ModelConfig) -> dict[str, Any]:
    # SimpleSeq2Seq / RepeatVector: the encoder vector is the only input at every step.
    return dict(token_input=False, fixed_context=True, readout="hidden", bridge="none")


def _sutskever(cfg: ModelConfig) -> dict[str, Any]:
    # Sutskever, Vinyals & Le 2014: the encoder's final state starts the decoder.
    return dict(readout="hidden", bridge="copy")


def _cho(cfg: ModelConfig) -> dict[str, Any]:
    # Cho et al. 2014 ("peek"): c initialises h (tanh V c), enters every step and the readout.
    return dict(fixed_context=True, readout="deep", bridge="linear")


def _bahdanau(cfg: ModelConfig) -> dict[str, Any]:
    # Bahdanau, Cho & Bengio 2015: additive attention on h_{t-1}, context enters the cell.
    return dict(attention="before", score="additive", readout="deep", bridge="linear")


def _luong(cfg: ModelConfig) -> dict[str, Any]:
    # Luong, Pham & Manning 2015: global attention on h_t, attentional vector fed back.
    return dict(
        attention="after",
        score="general",
        readout="attentional",
        input_feeding=cfg.attention.input_feeding,
        bridge="copy",
    )


RNN_VARIANTS = {
    "simple": _simple,
    "sutskever": _sutskever,
    "cho": _cho,
    "bahdanau": _bahdanau,
    "luong": _luong,
}
BIDIRECTIONAL_BY_DEFAULT = {"bahdanau"}


def encoder_is_bidirectional(cfg: ModelConfig) -> bool:
    if cfg.encoder.bidirectional is None:
        return cfg.preset in BIDIRECTIONAL_BY_DEFAULT
    return cfg.encoder.bidirectional


def build_encoder(cfg: ModelConfig, src_vocab_size: int, embed: nn.Module | None = None):
    """The preset's encoder alone (``embed``: its input embedding, else a token table)."""
    if cfg.preset == "transformer":
        return TransformerEncoder(src_vocab_size, cfg.transformer, cfg.embed_dropout)
    enc_cfg = cfg.encoder
    return RNNEncoder(
        src_vocab_size,
        enc_cfg.embed_size,
        enc_cfg.hidden_size,
        cfg.cell,
        enc_cfg.layers,
        encoder_is_bidirectional(cfg),
        enc_cfg.dropout,
        cfg.embed_dropout,
        cfg.spatial_dropout,
        embed=embed,
    )


def _scorer(cfg: ModelConfig, score: str | None, encoder_size: int):
    """The attention scorer and local window of an RNN preset (None, None without)."""
    if score is None and cfg.attention.score != "auto":
        raise ValueError(
            f"model.attention.score={cfg.attention.score!r} has no effect: preset "
            f"{cfg.preset!r} has no attention (use bahdanau or luong)"
        )
    if score is None:
        if cfg.attention.window != "global":
            raise ValueError(
                f"model.attention.window={cfg.attention.window!r} needs a preset with attention"
            )
        return None, None
    if cfg.attention.score != "auto":
        score = cfg.attention.score
    hidden = cfg.decoder.hidden_size
    scorer = build_scorer(score, hidden, encoder_size, cfg.attention.size)
    window = None
    if cfg.attention.window != "global":
        window = LocalWindow(cfg.attention.window, cfg.attention.width, hidden)
    return scorer, window


def _rnn(
    variant: Callable[[ModelConfig], dict[str, Any]],
    cfg: ModelConfig,
    src_vocab_size: int,
    tgt_vocab_size: int,
    decoder_cls: type = RNNDecoder,
    src_embed: nn.Module | None = None,
    tgt_embed: nn.Module | None = None,
    make_head: Callable[[int], nn.Module] | None = None,
    **decoder_extra: Any,
) -> Seq2Seq:
    """An RNN preset: encoder, decoder (``decoder_cls``, given ``decoder_extra`` too), head."""
    enc_cfg, dec_cfg = cfg.encoder, cfg.decoder
    encoder = build_encoder(cfg, src_vocab_size, src_embed)
    opts = variant(cfg)
    scorer, window = _scorer(cfg, opts.pop("score", None), encoder.output_size)
    bridge = opts.pop("bridge")
    if cfg.bridge != "auto":
        bridge = cfg.bridge
    elif bridge == "copy" and encoder.output_size != dec_cfg.hidden_size:
        bridge = "linear"  # sizes differ (e.g. a bidirectional encoder): learn the mapping
    decoder = decoder_cls(
        tgt_vocab_size,
        encoder.output_size,
        cfg.cell,
        dec_cfg.embed_size,
        dec_cfg.hidden_size,
        dec_cfg.layers,
        dec_cfg.dropout,
        scorer=scorer,
        window=window,
        readout_size=dec_cfg.readout_size,
        bridge=bridge,
        encoder_layers=enc_cfg.layers,
        embed_dropout=cfg.embed_dropout,
        spatial_dropout=cfg.spatial_dropout,
        embed=tgt_embed,
        **opts,
        **decoder_extra,
    )
    return Seq2Seq(
        encoder, decoder, _head(cfg, decoder, tgt_vocab_size, make_head), cfg.reverse_source
    )


def _head(cfg: ModelConfig, decoder, tgt_vocab_size: int, make_head) -> nn.Module:
    if make_head is not None:
        return make_head(decoder.output_size)
    head = VocabHead(decoder.output_size, tgt_vocab_size, cfg.output_dropout)
    if cfg.tie_embeddings:
        if decoder.embed is None:
            raise ValueError("tie_embeddings needs a decoder with token input (not 'simple')")
        head.tie(decoder.embed.embed)
    return head


def _transformer(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, **parts: Any
) -> Seq2Seq:
    # Vaswani et al. 2017; the RNN-only settings (cell, encoder/decoder sizes) do not apply.
    if parts.get("src_embed") or parts.get("tgt_embed") or parts.get("decoder_cls"):
        raise ValueError("the transformer preset reads tokens only (no value embeddings)")
    encoder = build_encoder(cfg, src_vocab_size)
    decoder = TransformerDecoder(tgt_vocab_size, cfg.transformer, cfg.embed_dropout)
    head = _head(cfg, decoder, tgt_vocab_size, parts.get("make_head"))
    return Seq2Seq(encoder, decoder, head, cfg.reverse_source)


PRESETS: dict[str, Callable[..., Seq2Seq]] = {
    **{name: partial(_rnn, variant) for name, variant in RNN_VARIANTS.items()},
    "transformer": _transformer,
}


def build_parts(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, *args, **parts):
    """The preset ``cfg.preset`` from the registry (``args``/``parts``: see :func:`_rnn`)."""
    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown model.preset {cfg.preset!r} ({', '.join(PRESETS)})")
    return PRESETS[cfg.preset](cfg, src_vocab_size, tgt_vocab_size, *args, **parts)
