"""``transduce export ct2``: the transformer preset as a CTranslate2 model.

Built with CTranslate2's model-spec API (``ctranslate2.specs.TransformerSpec``): every
weight of :class:`transduce.nn.transformer` is set on the spec, fused where CTranslate2
fuses (query/key/value of self-attention, key/value of cross-attention), then the spec
is validated, optionally quantised and saved by CTranslate2's own converter. Positions
are given as an explicit table, since ours interleave sine and cosine (Vaswani et al.
2017, section 3.5) where CTranslate2's built-in table concatenates them. CTranslate2 has
no recurrent decoder, so the RNN presets are refused (export them to ONNX instead).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from transduce.export.onnx import base_manifest, copy_text_files, write_manifest

QUANTIZATIONS = ("int8", "int16", "float32", "int8_float32")


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def _linear(spec, *layers: torch.nn.Linear) -> None:
    """One (possibly fused) linear layer: the layers' outputs stacked in order."""
    spec.weight = np.concatenate([_np(x.weight) for x in layers])
    spec.bias = np.concatenate([_np(x.bias) for x in layers])


def _norm(spec, norm: torch.nn.LayerNorm) -> None:
    spec.gamma, spec.beta = _np(norm.weight), _np(norm.bias)


def _block(spec, block, cross: bool) -> None:
    a = block.self_attn
    _linear(spec.self_attention.linear[0], a.q, a.k, a.v)
    _linear(spec.self_attention.linear[1], a.out)
    _norm(spec.self_attention.layer_norm, block.norms[0])
    if cross:
        c = block.cross_attn
        _linear(spec.attention.linear[0], c.q)
        _linear(spec.attention.linear[1], c.k, c.v)
        _linear(spec.attention.linear[2], c.out)
        _norm(spec.attention.layer_norm, block.norms[1])
    _linear(spec.ffn.linear_0, block.ff[0])
    _linear(spec.ffn.linear_1, block.ff[3])
    _norm(spec.ffn.layer_norm, block.norms[-1])


def _stack(spec, stack, positions: int, cross: bool) -> None:
    from transduce.nn.transformer import sinusoid

    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = _np(stack.embed.embed.weight)
    spec.scale_embeddings = True  # times sqrt(d_model), as _Stack.embed_at
    if stack.positions.table is not None:
        table = stack.positions.table.weight[:positions]
    else:
        table = sinusoid(torch.arange(positions), stack.size)
    spec.position_encodings.encodings = _np(table)
    if stack.pre_norm:
        _norm(spec.layer_norm, stack.final_norm)
    for layer_spec, block in zip(spec.layer, stack.layers, strict=True):
        _block(layer_spec, block, cross)


def ct2_positions(t) -> int:
    """Rows of the position table an export holds (a sinusoid's at least 1,024): CTranslate2
    fails on a decoder position past them, so the manifest records it (``positions``)."""
    return t.max_positions if t.positions == "learned" else max(t.max_positions, 1024)


def build_spec(model: torch.nn.Module, cfg, src_tokens: list[str], tgt_tokens: list[str]):
    """The CTranslate2 ``TransformerSpec`` of a transduce transformer."""
    import ctranslate2

    t = cfg.transformer
    spec = ctranslate2.specs.TransformerSpec.from_config(
        (t.encoder_layers, t.decoder_layers), t.heads, pre_norm=t.pre_norm
    )
    spec.config.layer_norm_epsilon = 1e-5  # torch.nn.LayerNorm's
    positions = ct2_positions(t)
    _stack(spec.encoder, model.encoder, positions, cross=False)
    _stack(spec.decoder, model.decoder, positions, cross=True)
    _linear(spec.decoder.projection, model.head.proj)
    spec.register_source_vocabulary(src_tokens)
    spec.register_target_vocabulary(tgt_tokens)
    return spec


def export_ct2(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    checkpoint: str = "best",
    quantization: str | None = None,
) -> Path:
    """Convert the transformer run in ``run_dir`` into the CTranslate2 model ``out``."""
    from ctranslate2.converters.converter import Converter

    from transduce.config import load_run_config
    from transduce.inference.translate import Translator

    run_dir, out = Path(run_dir), Path(out)
    cfg = load_run_config(run_dir)
    if cfg.series is not None or cfg.model.preset != "transformer":
        raise ValueError(
            f"{run_dir}: preset {cfg.model.preset!r}: CTranslate2 has no recurrent decoder "
            "(it converts only Transformers); use `transduce export onnx` for this model"
        )
    if len(cfg.data.src_fields) > 1:
        raise ValueError(
            f"{run_dir}: several source fields cannot go to CTranslate2; "
            "use `transduce export onnx`"
        )
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"--quantization must be one of {', '.join(QUANTIZATIONS)}")
    translator = Translator.load(run_dir, checkpoint)
    pipe = translator.pipeline
    spec = build_spec(translator.model, cfg.model, pipe.src_vocab.itos, pipe.tgt_vocab.itos)

    class _SpecConverter(Converter):
        def _load(self):
            return spec

    _SpecConverter().convert(str(out), quantization=quantization, force=True)
    manifest = base_manifest(cfg, "ct2", run_dir, checkpoint)
    manifest.update(kind="text", text=copy_text_files(cfg, run_dir, out), quantize=quantization)
    manifest["positions"] = ct2_positions(cfg.model.transformer)
    write_manifest(out, manifest)
    return out
