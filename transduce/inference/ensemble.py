"""Ensembles: several trained models decoding as one.

A text ensemble implements the step contract (``encode``, ``init_state``, ``step``, ``head``,
``State.select``) over its members, so greedy, beam search and sampling run on it unchanged:
at every step the members' log-probabilities are averaged (a product of experts, renormalised
by the search's softmax), as in the ensembles of Sutskever et al. (2014) and of every strong
WMT entry since. Members must share the target vocabulary; each reads the source with its own
tokenizer. Where members tokenize a batch differently, their sources travel packed side by side
in one tensor (member 0's first, the others after it): every row operation search makes
(``index_select``, ``State.select``) then applies to all members alike, and the mask marks only
member 0's tokens, so length limits follow the first member's source as for a single model.

Forecast ensembles are in :mod:`transduce.forecasting.ensemble` (re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from transduce.data.batches import ParallelData
from transduce.data.vocab import PAD_ID
from transduce.errors import run_dir_list
from transduce.inference.translate import DecodeOptions, Translator


class EnsembleMemory(NamedTuple):
    members: tuple[Any, ...]

    def select(self, index: torch.Tensor) -> EnsembleMemory:
        return EnsembleMemory(tuple(m.select(index) for m in self.members))


class EnsembleState(NamedTuple):
    members: tuple[Any, ...]

    def select(self, index: torch.Tensor) -> EnsembleState:
        return EnsembleState(tuple(s.select(index) for s in self.members))


class Ensemble(nn.Module):
    """The step contract over ``models``, averaging their log-probabilities.

    ``widths`` (set per batch with :meth:`pack`) says how the source columns divide among
    the members: ``None`` when all read the same ids, else one width per member.
    """

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(models)
        self.widths: list[int] | None = None

    def pack(self, sources: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member sources ``[B, S_i]`` -> one ``(src [B, sum S_i], src_mask)`` for search.

        When every member reads the same ids, that tensor is returned as it is."""
        first = sources[0]
        if all(s.shape == first.shape and torch.equal(s, first) for s in sources[1:]):
            self.widths = None
            return first, first != PAD_ID
        self.widths = [s.shape[1] for s in sources]
        packed = torch.cat(sources, dim=1)  # [B, sum S_i]
        mask = torch.zeros_like(packed, dtype=torch.bool)
        mask[:, : first.shape[1]] = first != PAD_ID  # limits follow member 0's source
        return packed, mask

    def _split(self, src: torch.Tensor, src_mask: torch.Tensor):
        if self.widths is None:
            return [(src, src_mask)] * len(self.members)
        parts = torch.split(src, self.widths, dim=1)
        return [(p, p != PAD_ID) for p in parts]

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> EnsembleMemory:
        pairs = self._split(src, src_mask)
        return EnsembleMemory(
            tuple(m.encode(s, k) for m, (s, k) in zip(self.members, pairs, strict=True))
        )

    def init_state(self, memory: EnsembleMemory) -> EnsembleState:
        return EnsembleState(
            tuple(m.init_state(mem) for m, mem in zip(self.members, memory.members, strict=True))
        )

    def step(self, prev: torch.Tensor, state: EnsembleState, memory: EnsembleMemory):
        """``prev [b]`` -> (per-member features, state, attention ``[b, S]`` or None).

        The attention shown is the mean over the members that read member 0's source ids
        (all of them unless tokenizers differ), padded to the packed width."""
        outs = [
            m.step(prev, s, mem)
            for m, s, mem in zip(self.members, state.members, memory.members, strict=True)
        ]
        features = tuple(o[0] for o in outs)
        new_state = EnsembleState(tuple(o[1] for o in outs))
        shared = outs if self.widths is None else outs[:1]
        attns = [o[2] for o in shared if o[2] is not None]
        attn = torch.stack(attns).mean(0) if attns else None
        if attn is not None and self.widths is not None:
            attn = F.pad(attn, (0, sum(self.widths) - attn.shape[1]))  # [b, sum S_i]
        return features, new_state, attn

    def head(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Mean of the members' log-probabilities ``[b, V]`` (one member: its own logits)."""
        if len(self.members) == 1:
            return self.members[0].head(features[0])
        logps = [
            F.log_softmax(m.head(f).float(), -1)
            for m, f in zip(self.members, features, strict=True)
        ]
        return torch.stack(logps).mean(0)

    def score_log_probs(self, features: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """What scoring a given target reads ``[b, V]``: the mean of the members' own
        log-probabilities, so an ensemble's score of a pair is the mean of its members'
        (the search instead renormalises :meth:`head`'s mean, a product of experts)."""
        logps = [
            F.log_softmax(m.head(f).float(), -1)
            for m, f in zip(self.members, features, strict=True)
        ]
        return torch.stack(logps).mean(0)


def _check_compatible(members: list[Translator], names: list[str]) -> None:
    """Members must share the target vocabulary and the input fields."""
    ref = members[0].pipeline
    for t, name in zip(members[1:], names[1:], strict=True):
        mine, theirs = ref.tgt_vocab.itos, t.pipeline.tgt_vocab.itos
        if mine != theirs:
            diff = next(
                (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                min(len(mine), len(theirs)),
            )
            a = mine[diff] if diff < len(mine) else "(end)"
            b = theirs[diff] if diff < len(theirs) else "(end)"
            raise ValueError(
                f"ensemble: {name}'s target vocabulary differs from {names[0]}'s "
                f"({len(theirs)} vs {len(mine)} entries; id {diff}: {b!r} vs {a!r}); "
                "ensemble members must share the target vocabulary"
            )
        if t.pipeline.fields != ref.fields:
            raise ValueError(
                f"ensemble: {name} reads {t.pipeline.fields} input field(s), "
                f"{names[0]} reads {ref.fields}"
            )


class EnsembleTranslator(Translator):
    """``Translator`` over several runs: ``EnsembleTranslator.load(["runs/a", "runs/b"])``.

    Decoding options, output and n-best lists are those of a single model; the first member
    supplies the decoding defaults, the tokenizers for output and the batching."""

    def __init__(self, members: list[Translator], names: list[str] | None = None):
        names = names or [f"member {i}" for i in range(len(members))]
        _check_compatible(members, names)
        first = members[0]
        super().__init__(
            first.cfg, first.pipeline, Ensemble([t.model for t in members]), first.device
        )
        self.members, self.names = members, names

    @classmethod
    def load(  # type: ignore[override]
        cls,
        run_dirs: Sequence[str | os.PathLike],
        checkpoint: str = "best",
        device: str = "cpu",
    ) -> EnsembleTranslator:
        run_dirs = run_dir_list(run_dirs, "EnsembleTranslator.load")
        members = [Translator.load(d, checkpoint, device=device) for d in run_dirs]
        return cls(members, [str(d) for d in run_dirs])

    def _sources(self, src, src_mask, texts: list[str], options: DecodeOptions):
        """Member 0's ids as batched, then each other member's own tokenization of the same
        rows (cut at the same input limit), packed for search by :meth:`Ensemble.pack`."""
        limit = options.max_input_len or self.cfg.decode.max_input_len
        sources = [src]
        for t in self.members[1:]:
            ids = [t.pipeline.src_vocab.encode(t.pipeline.src_tokens(x)[:limit]) for x in texts]
            sources.append(ParallelData(ids).batch(np.arange(len(ids))).src.to(self.device))
        return self.model.pack(sources)


# Forecast ensembles live in transduce.forecasting.ensemble (issue 31); the old imports work.
from transduce.forecasting.ensemble import (  # noqa: E402, F401
    ForecastEnsemble,
    combine_forecasts,
    predict_ensemble,
)
