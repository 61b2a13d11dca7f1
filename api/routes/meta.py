"""The contract, liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from api.deps import MetricsDep, SinkDep
from api.errors import ApiError, ErrorPublic
from ingest.contract import event_json_schema

router = APIRouter(tags=["meta"])


class StatusPublic(BaseModel):
    """A health answer."""

    status: str
    """``ok``, or ``unavailable`` for a failed readiness check."""


@router.get("/v1/schema", summary="JSON Schema of one event (contract v1)")
async def get_schema() -> dict[str, Any]:
    """The event contract as JSON Schema (draft 2020-12), for clients to validate before sending."""
    return event_json_schema()


@router.get("/healthz", summary="Liveness")
async def healthz() -> StatusPublic:
    """The process serves HTTP."""
    return StatusPublic(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the event sink (Kafka) is reachable",
    responses={503: {"model": ErrorPublic, "description": "The sink is unreachable."}},
)
async def readyz(sink: SinkDep) -> StatusPublic:
    """200 when events can be accepted now, 503 otherwise."""
    if not await sink.ready():
        raise ApiError(503, "the event sink (Kafka) is unreachable", code="unavailable")
    return StatusPublic(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(api_metrics: MetricsDep) -> Response:
    """Prometheus text exposition of the API's metrics."""
    return Response(api_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
