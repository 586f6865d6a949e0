"""``Seq2SeqModel`` = encoder + decoder + head, and the named presets (ARCHITECTURE §3)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from transduce.config import ModelConfig
from transduce.nn.attention import LocalWindow, build_scorer
from transduce.nn.decoders import DecoderState, RNNDecoder
from transduce.nn.encoders import Memory, RNNEncoder
from transduce.nn.heads import VocabHead
from transduce.nn.transformer import TransformerDecoder, TransformerEncoder


def reverse_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Reverse each row's real tokens in place of ``[B, S, ...]``, leaving padding at the end."""
    lengths = mask.sum(1, keepdim=True)  # [B, 1]
    pos = torch.arange(x.shape[1], device=x.device)[None, :]  # [1, S]
    idx = torch.where(pos < lengths, lengths - 1 - pos, pos)  # [B, S]
    if x.dim() == 3:
        idx = idx[:, :, None].expand(-1, -1, x.shape[2])
    return x.gather(1, idx)


class Seq2SeqModel(nn.Module):
    """The step contract search relies on: ``encode``, ``init_state``, ``step``, ``head``."""

    def __init__(
        self, encoder: nn.Module, decoder: nn.Module, head: VocabHead, reverse_source: bool
    ):
        super().__init__()
        self.encoder, self.decoder, self.head = encoder, decoder, head
        self.reverse_source = reverse_source

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """``src [B, S]`` -> Memory with attention keys ready."""
        if self.reverse_source:
            # Sutskever et al. 2014: read the source backwards. Outputs are put back in source
            # order so attention weights line up with the tokens as written.
            memory = self.encoder(reverse_padded(src, src_mask), src_mask)
            memory = memory._replace(outputs=reverse_padded(memory.outputs, src_mask))
        else:
            memory = self.encoder(src, src_mask)
        return self.decoder.prepare(memory)

    def init_state(self, memory: Memory) -> DecoderState:
        return self.decoder.init_state(memory)

    def step(
        self, prev: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        return self.decoder.step(prev, state, memory)

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced logits ``[B, T, V]`` and attention ``[B, T, S]`` (or None)."""
        memory = self.encode(src, src_mask)
        features, attn = self.decoder(tgt_in, memory, self.init_state(memory))
        return self.head(features), attn


Seq2Seq = Seq2SeqModel  # the torch module's earlier name (the array API's is estimators.Seq2Seq)

# ---------------------------------------------------------------------- presets
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


PRESETS = {
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


def build_model(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, sources: int = 1
) -> Seq2Seq:
    """Build the preset ``cfg.preset`` with the sizes in ``cfg``; ``sources > 1`` reads that
    many packed source fields, fused as ``cfg.fusion`` says (transduce/nn/multisource.py)."""
    if sources > 1:
        from transduce.nn.multisource import build_multi_source

        return build_multi_source(cfg, src_vocab_size, tgt_vocab_size, sources)
    return build_parts(cfg, src_vocab_size, tgt_vocab_size)


def build_encoder(cfg: ModelConfig, src_vocab_size: int) -> nn.Module:
    """The preset's encoder alone."""
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
    )


def build_parts(
    cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int, decoder_cls: type = RNNDecoder,
    **decoder_extra: Any,
) -> Seq2Seq:  # fmt: skip
    """Encoder, decoder (``decoder_cls``, given ``decoder_extra`` too) and head of a preset."""
    if cfg.preset == "transformer":
        return _transformer(cfg, src_vocab_size, tgt_vocab_size)
    enc_cfg, dec_cfg = cfg.encoder, cfg.decoder
    encoder = build_encoder(cfg, src_vocab_size)
    opts = PRESETS[cfg.preset](cfg)
    score = opts.pop("score", None)
    if score is None and cfg.attention.score != "auto":
        raise ValueError(
            f"model.attention.score={cfg.attention.score!r} has no effect: preset "
            f"{cfg.preset!r} has no attention (use bahdanau or luong)"
        )
    if cfg.attention.score != "auto" and score is not None:
        score = cfg.attention.score
    bridge = opts.pop("bridge")
    if cfg.bridge != "auto":
        bridge = cfg.bridge
    elif bridge == "copy" and encoder.output_size != dec_cfg.hidden_size:
        bridge = "linear"  # sizes differ (e.g. a bidirectional encoder): learn the mapping
    scorer = window = None
    if score is not None:
        scorer = build_scorer(score, dec_cfg.hidden_size, encoder.output_size, cfg.attention.size)
        if cfg.attention.window != "global":
            window = LocalWindow(cfg.attention.window, cfg.attention.width, dec_cfg.hidden_size)
    elif cfg.attention.window != "global":
        raise ValueError(
            f"model.attention.window={cfg.attention.window!r} needs a preset with attention"
        )
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
        **opts,
        **decoder_extra,
    )
    head = VocabHead(decoder.output_size, tgt_vocab_size, cfg.output_dropout)
    if cfg.tie_embeddings:
        if decoder.embed is None:
            raise ValueError("tie_embeddings needs a decoder with token input (not 'simple')")
        head.tie(decoder.embed.embed)
    return Seq2Seq(encoder, decoder, head, cfg.reverse_source)


def _transformer(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    # Vaswani et al. 2017; the RNN-only settings (cell, encoder/decoder sizes) do not apply.
    encoder = build_encoder(cfg, src_vocab_size)
    decoder = TransformerDecoder(tgt_vocab_size, cfg.transformer, cfg.embed_dropout)
    head = VocabHead(decoder.output_size, tgt_vocab_size, cfg.output_dropout)
    if cfg.tie_embeddings:
        head.tie(decoder.embed.embed)
    return Seq2Seq(encoder, decoder, head, cfg.reverse_source)


def build_value_model(cfg: ModelConfig, input_dim: int, output_dim: int, exog_dim: int = 0):
    """The preset ``cfg.preset`` on real-valued sequences: value embeddings replace the
    token embeddings (encoder input ``[B, S, input_dim]``, decoder input ``[B, T,
    output_dim + exog_dim]``: the previous output and known exogenous features) and a
    regression head replaces the vocabulary head. Encoder and decoder are the token ones."""
    from transduce.nn.embed import ValueEmbedding
    from transduce.nn.heads import RegressionHead

    if cfg.preset == "transformer" or cfg.tie_embeddings:
        raise ValueError("real-valued sequences need an RNN preset without tie_embeddings")
    model = build_model(cfg, 2, 2)  # token tables of size 2, replaced below
    model.encoder.embed = ValueEmbedding(input_dim, cfg.encoder.embed_size, cfg.embed_dropout)
    if model.decoder.embed is not None:  # 'simple' has no previous-output input
        dec_in = output_dim + exog_dim
        model.decoder.embed = ValueEmbedding(dec_in, cfg.decoder.embed_size, cfg.embed_dropout)
    model.head = RegressionHead(model.decoder.output_size, output_dim, cfg.output_dropout)
    return model
