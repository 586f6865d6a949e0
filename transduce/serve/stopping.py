"""Stopping a search whose requests were all given up (client gone, time out): the served
model checks :func:`transduce.serve.batcher.check_cancelled` once per decoding step, so
even one long beam search ends within a step rather than at ``max_len``.

- PyTorch runs (and ensembles): a forward pre-hook on each model's output projection.
- ONNX exports: the runtime's search loop is Python; the check runs before each decoder
  step (the model's ``step``).
- CTranslate2 exports decode a whole batch in one native call, which cannot be stopped
  midway: a given-up request is dropped before its next batch only.
"""

from __future__ import annotations

from typing import Any

from transduce.serve.batcher import check_cancelled


def interruptible(translator: Any) -> None:
    """Make ``translator``'s decoding steps check for a given-up batch (idempotent)."""
    for t in getattr(translator, "members", None) or [translator]:
        model = getattr(t, "model", None)
        head = getattr(model, "head", None)
        if hasattr(head, "register_forward_pre_hook"):  # torch
            if not getattr(head, "_transduce_checks", False):
                head.register_forward_pre_hook(lambda module, args: check_cancelled())
                head._transduce_checks = True
            continue
        step = getattr(model, "step", None)
        if step is None or getattr(step, "checks_cancelled", False):
            continue

        def checked(*args: Any, _step=step, **kwargs: Any):
            check_cancelled()
            return _step(*args, **kwargs)

        checked.checks_cancelled = True  # type: ignore[attr-defined]
        model.step = checked
