"""Building a model: :func:`build_model` (tokens, one or several sources) and
:func:`build_value_model` (real-valued sequences), from the preset registry
(:mod:`transduce.nn.presets`) around the :class:`~transduce.nn.seq2seq.Seq2SeqModel` contract."""

from __future__ import annotations

from transduce.config import ModelConfig
from transduce.nn.embed import ValueEmbedding
from transduce.nn.heads import QuantileHead, RegressionHead
from transduce.nn.multisource import build_multi_source
from transduce.nn.presets import (
    BIDIRECTIONAL_BY_DEFAULT,
    PRESETS,
    RNN_VARIANTS,
    build_encoder,
    build_parts,
    encoder_is_bidirectional,
)
from transduce.nn.seq2seq import Seq2Seq, Seq2SeqModel, reverse_padded

__all__ = [
    "BIDIRECTIONAL_BY_DEFAULT",
    "PRESETS",
    "RNN_VARIANTS",
    "Seq2Seq",
    "Seq2SeqModel",
    "build_encoder",
    "build_model",
    "build_parts",
    "build_value_model",
    "encoder_is_bidirectional",
    "reverse_padded",
]


def build_model(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, sources: int = 1
) -> Seq2Seq:
    """Build the preset ``cfg.preset`` with the sizes in ``cfg``; ``sources > 1`` reads that
    many packed source fields, fused as ``cfg.fusion`` says (transduce/nn/multisource.py)."""
    if sources > 1:
        return build_multi_source(cfg, src_vocab_size, tgt_vocab_size, sources)
    return build_parts(cfg, src_vocab_size, tgt_vocab_size)


def build_value_model(
    cfg: ModelConfig,
    input_dim: int,
    output_dim: int,
    exog_dim: int = 0,
    src_embed=None,
    quantile_levels: int = 0,
):
    """The preset ``cfg.preset`` on real-valued sequences: value embeddings in place of the
    token embeddings (encoder input ``[B, S, input_dim]``, decoder input ``[B, T,
    output_dim + exog_dim]``: the previous output and known exogenous features) and a
    regression head in place of the vocabulary head, handed to the preset's builder.
    Encoder and decoder are the token ones. ``src_embed``: another input embedding (token
    ids in, values out). ``quantile_levels`` > 0 (with ``output_dim`` 1): a
    :class:`QuantileHead` (median first, so the roll-out feeds the median back)."""
    if cfg.preset == "transformer" or cfg.tie_embeddings:
        raise ValueError("real-valued sequences need an RNN preset without tie_embeddings")
    drop = cfg.embed_dropout
    if src_embed is None:
        src_embed = ValueEmbedding(input_dim, cfg.encoder.embed_size, drop)
    return build_parts(
        cfg,
        0,
        0,
        src_embed=src_embed,
        tgt_embed=ValueEmbedding(output_dim + exog_dim, cfg.decoder.embed_size, drop),
        make_head=lambda size: (
            QuantileHead(size, quantile_levels, cfg.output_dropout)
            if quantile_levels
            else RegressionHead(size, output_dim, cfg.output_dropout)
        ),
    )
