"""Privacy operations (admin key): erasure of users."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import from_json
from starlette.concurrency import run_in_threadpool

from api.deps import AdminKeyDep, ErasureQueueDep, SettingsDep
from api.erasures import NO_RUNNER, ErasureQueue
from api.errors import ApiError, ErrorPublic
from api.routes.events import read_body
from flywheel.errors import ConfigError
from flywheel.settings import Settings
from privacy.requests import MAX_USERS_PER_REQUEST

router = APIRouter(tags=["privacy"])

# As the frontend sent it as ``user_id``, padding included (ids are normalised where they are
# pseudonymised, and events landed before that are found by the id exactly as sent).
UserId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"\S")]


class ErasureRequest(BaseModel):
    """The users to erase, by the raw ids the frontend sends as ``user_id``."""

    model_config = ConfigDict(extra="forbid")

    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_USERS_PER_REQUEST)


RequestParam = Annotated[
    str, Path(pattern=r"^[0-9a-f]{32}$", description="The request id the POST answered.")
]


class ErasureAcceptedPublic(BaseModel):
    """An accepted erasure: logged, its users suppressed; the rest runs in the background."""

    request: str
    status: Literal["pending"]
    started_at: str
    pseudonyms: dict[str, list[str]]
    """The users' pseudonyms by key version (never a raw id)."""
    newly_suppressed: int
    status_url: str


class ErasureStatusPublic(BaseModel):
    """What the erasure log says of a request; pseudonyms only, never a raw id."""

    request: str
    status: Literal["pending", "completed", "failed"]
    """``pending``: queued, running, or cut off by a restart (resumed as the API starts)."""
    started_at: str
    pseudonyms: dict[str, list[str]]
    finished_at: str | None = None
    newly_suppressed: int | None = None
    lake_files_rewritten: list[dict[str, Any]] | None = None
    lake_events_removed: int | None = None
    warehouse_rows_deleted: dict[str, int] | None = None
    datasets: list[dict[str, Any]] | None = None
    kafka_raw_until: list[dict[str, Any]] | None = None
    """What erasure cannot reach: per Kafka topic, the records' ``retention_ms`` and the time
    (``until``) by which the broker has deleted every raw record sent before the request."""
    error: str | None = None
    """Why it failed (``failed``); it is resumed as the API next starts, or send it again."""
    failed_at: str | None = None


@router.post(
    "/v1/privacy/erasure",
    summary="Erase users everywhere and suppress their future events",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ErasureRequest.model_json_schema()}},
        }
    },
    responses={
        400: {"model": ErrorPublic, "description": "The body is not JSON."},
        413: {"model": ErrorPublic, "description": "The body is over the request size limit."},
        401: {"model": ErrorPublic, "description": "No bearer key."},
        403: {"model": ErrorPublic, "description": "Not an admin key."},
        422: {
            "model": ErrorPublic,
            "description": "No ids, more than 1,000, or a field of the wrong type; ``errors`` "
            "names each field's path.",
        },
        503: {
            "model": ErrorPublic,
            "description": "No pseudonym key is configured, or this process cannot finish "
            "erasures.",
        },
    },
)
async def erase(
    _: AdminKeyDep,
    settings: SettingsDep,
    queue: ErasureQueueDep,
    http_request: Request,
    response: Response,
) -> ErasureAcceptedPublic:
    """Erase up to 1,000 users (by raw id) from the lake, the warehouse and the published
    datasets, and add them to the suppression list. The request is logged and the users
    suppressed before the answer (202): from then on their new events are dropped at ingest.
    Rewriting the lake, the warehouse and the datasets follows in the background, one request at
    a time; ``GET`` the ``status_url`` (also the ``Location`` header) to follow it. Idempotent:
    sending the same users again is safe."""
    # The body is read here, after the admin key was checked (a body parameter would be read
    # and parsed before any dependency runs), and never past the request limit.
    body = await read_body(http_request, settings.api.max_request_bytes)
    request = parse_erasure_request(body)
    return await run_in_threadpool(_begin, settings, queue, request, response)


def parse_erasure_request(body: bytes) -> ErasureRequest:
    """The request body: 400 if it is not JSON, 422 with field paths if it is the wrong shape."""
    try:
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})", code="malformed_json") from None
    try:
        return ErasureRequest.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, object]] = [
            {
                "path": ".".join(["body", *map(str, e["loc"])]),
                "type": e["type"],
                "message": e["msg"],
            }
            for e in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise ApiError(
            422, "the request is invalid", code="invalid_request", errors=errors
        ) from None


def _begin(
    settings: Settings, queue: ErasureQueue, request: ErasureRequest, response: Response
) -> ErasureAcceptedPublic:
    from privacy.keys import keyring_for
    from privacy.requests import begin_erasure

    if not queue.finishes:  # refused before anything is logged or suppressed
        raise ConfigError(NO_RUNNER)
    keyring = keyring_for(settings)
    record = begin_erasure(settings, list(request.user_ids), keyring)
    queue.submit(record, keyring)
    status_url = f"/v1/privacy/erasure/{record.request}"
    response.headers["Location"] = status_url
    return ErasureAcceptedPublic(
        request=record.request,
        status="pending",
        started_at=record.started_at,
        pseudonyms=record.pseudonyms,
        newly_suppressed=record.newly_suppressed,
        status_url=status_url,
    )


@router.get(
    "/v1/privacy/erasure/{request_id}",
    summary="Where an erasure request is",
    responses={
        401: {"model": ErrorPublic, "description": "No bearer key."},
        403: {"model": ErrorPublic, "description": "Not an admin key."},
        404: {"model": ErrorPublic, "description": "The erasure log names no such request."},
    },
)
def erasure_status(
    _: AdminKeyDep, settings: SettingsDep, request_id: RequestParam
) -> ErasureStatusPublic:
    """The request's status (``pending``, ``completed`` or ``failed``) and, once completed, what
    it did: files rewritten, events removed, warehouse rows deleted, dataset versions superseded
    and published."""
    from privacy.requests import erasure_status as read_status

    found = read_status(settings.data_dir, request_id)
    if not found:
        raise ApiError(404, f"no erasure request {request_id}", code="not_found")
    return ErasureStatusPublic(**found)
