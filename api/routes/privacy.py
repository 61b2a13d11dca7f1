"""Privacy operations (admin key): erasure of users."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.deps import AdminKeyDep, ErasureQueueDep, SettingsDep
from api.errors import ApiError, ErrorPublic
from flywheel.privacy import MAX_USERS_PER_REQUEST

router = APIRouter(tags=["privacy"])

UserId = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]


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
    error: str | None = None
    """Why it failed (``failed``); it is resumed as the API next starts, or send it again."""
    failed_at: str | None = None


@router.post(
    "/v1/privacy/erasure",
    summary="Erase users everywhere and suppress their future events",
    status_code=202,
    responses={
        400: {"model": ErrorPublic, "description": "The body is not JSON."},
        401: {"model": ErrorPublic, "description": "No bearer key."},
        403: {"model": ErrorPublic, "description": "Not an admin key."},
        422: {"model": ErrorPublic, "description": "No ids, more than 1,000, or malformed."},
        503: {"model": ErrorPublic, "description": "No pseudonym key is configured."},
    },
)
def erase(
    _: AdminKeyDep,
    settings: SettingsDep,
    queue: ErasureQueueDep,
    request: ErasureRequest,
    response: Response,
) -> ErasureAcceptedPublic:
    """Erase up to 1,000 users (by raw id) from the lake, the warehouse and the published
    datasets, and add them to the suppression list. The request is logged and the users
    suppressed before the answer (202): from then on their new events are dropped at ingest.
    Rewriting the lake, the warehouse and the datasets follows in the background, one request at
    a time; ``GET`` the ``status_url`` (also the ``Location`` header) to follow it. Idempotent:
    sending the same users again is safe."""
    from flywheel.privacy import begin_erasure
    from ingest.keys import keyring_for

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
    from flywheel.privacy import erasure_status as read_status

    found = read_status(settings.data_dir, request_id)
    if not found:
        raise ApiError(404, f"no erasure request {request_id}", code="not_found")
    return ErasureStatusPublic(**found)
