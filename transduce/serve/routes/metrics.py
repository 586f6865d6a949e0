"""``GET /metrics``: the Prometheus text exposition of this process's counters."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from transduce.serve.routes.common import State

router = APIRouter(tags=["operations"])


PROMETHEUS = {200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}}


@router.get("/metrics", response_class=Response, responses=PROMETHEUS)
def metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
