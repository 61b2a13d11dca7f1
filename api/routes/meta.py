"""The contract, liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from api.deps import MetricsDep, ReadinessDep, SettingsDep
from api.errors import ApiError, ErrorPublic
from ingest.contract import event_json_schema

router = APIRouter(tags=["meta"])


class StatusPublic(BaseModel):
    """A health answer."""

    status: str
    """``ok``, or ``unavailable`` for a failed readiness check."""


@router.get("/v1/schema", summary="JSON Schema of one event (contract v1)")
async def get_schema(settings: SettingsDep) -> dict[str, Any]:
    """The event contract as JSON Schema (draft 2020-12), for clients to validate before sending;
    texts are bounded by ``FLYWHEEL_CONTRACT__MAX_TEXT_CHARS``."""
    return event_json_schema(max_text_chars=settings.contract.max_text_chars)


@router.get("/healthz", summary="Liveness")
async def healthz() -> StatusPublic:
    """The process serves HTTP."""
    return StatusPublic(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: a POST /v1/events would be stored now",
    responses={
        503: {
            "model": ErrorPublic,
            "description": "Events cannot be stored now (broker unreachable, lake folder not "
            "writable or its disk nearly full); ``message`` says why.",
        }
    },
)
async def readyz(readiness: ReadinessDep) -> StatusPublic:
    """200 when events can be accepted now, 503 with the reason otherwise (the answer is at most
    ``FLYWHEEL_API__READY_CACHE_S`` old)."""
    reason = await readiness.reason()
    if reason is not None:
        raise ApiError(503, f"not ready: {reason}", code="not_ready")
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
