"""The seeds' three Keras-style classes on the project's presets, and ``load_model``."""

from __future__ import annotations

import os

from transduce.estimators.base import Estimator


class SimpleSeq2Seq(Estimator):
    """Encoder vector repeated as the decoder's only input (Keras RepeatVector; no feedback)."""

    _preset = "simple"

    def __init__(self, output_dim: int, output_length: int, **kwargs):
        super().__init__(output_dim, output_length, **kwargs)


class Seq2Seq(Estimator):
    """Sutskever et al. 2014 (state passing); ``peek=True``: Cho et al. 2014, the encoder
    vector enters every decoder step. ``teacher_force=False`` (the seeds' default) trains
    on the model's own previous outputs."""

    def __init__(
        self,
        output_dim: int,
        output_length: int,
        peek: bool = False,
        teacher_force: bool = False,
        **kwargs,
    ):
        self._preset = "cho" if peek else "sutskever"
        super().__init__(output_dim, output_length, teacher_force=teacher_force, **kwargs)
        self.args["peek"] = peek


class AttentionSeq2Seq(Estimator):
    """Bahdanau et al. 2015: additive attention over a (by default bidirectional) encoder."""

    _preset = "bahdanau"

    def __init__(self, output_dim: int, output_length: int, bidirectional: bool = True, **kwargs):
        super().__init__(output_dim, output_length, bidirectional=bidirectional, **kwargs)


def load_model(path: str | os.PathLike) -> Estimator:
    """Rebuild an estimator written by ``save``."""
    return Estimator.load(path)
