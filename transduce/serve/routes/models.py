"""``GET /v1/models``: what each served model is, how it was trained, its defaults."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from transduce.serve import schemas as s
from transduce.serve.routes.common import ERRORS, ReadyState

router = APIRouter(tags=["models"])
log = logging.getLogger("transduce.serve")


@router.get("/v1/models", response_model=s.ModelsResponse, responses=ERRORS)
async def list_models(state: ReadyState) -> s.ModelsResponse:
    return s.ModelsResponse(models=[s.ModelInfo(**_describe(m)) for m in state.models.values()])


def _describe(model: Any) -> dict[str, Any]:
    """The model's summary; a run directory damaged since loading (metrics.jsonl rewritten,
    say) costs the training record, not the reply."""
    try:
        return model.describe()
    except Exception as err:  # what a damaged run's files raise varies: TypeError, OSError...
        log.warning("describing %s: %s", model.name, err)
        return {
            "name": model.name,
            "kind": model.kind,
            "engine": getattr(model, "engine", "torch"),
            "preset": "unknown",
            "input_fields": list(getattr(model, "fields", ())),
            "training": {},
            "decoding_defaults": {},
        }
