"""Privacy operations (admin key): erasure of users."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.deps import AdminKeyDep, SettingsDep
from api.errors import ErrorPublic
from flywheel.privacy import MAX_USERS_PER_REQUEST

router = APIRouter(tags=["privacy"])

UserId = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]


class ErasureRequest(BaseModel):
    """The users to erase, by the raw ids the frontend sends as ``user_id``."""

    model_config = ConfigDict(extra="forbid")

    user_ids: list[UserId] = Field(min_length=1, max_length=MAX_USERS_PER_REQUEST)


class ErasurePublic(BaseModel):
    """What the erasure did (its erasure-log record); pseudonyms only, never a raw id."""

    request: str
    started_at: str
    finished_at: str | None
    pseudonyms: dict[str, list[str]]
    """The users' pseudonyms by key version."""
    newly_suppressed: int
    lake_files_rewritten: list[dict[str, Any]]
    lake_events_removed: int
    warehouse_rows_deleted: dict[str, int]
    datasets: list[dict[str, Any]]


@router.post(
    "/v1/privacy/erasure",
    summary="Erase users everywhere and suppress their future events",
    responses={
        400: {"model": ErrorPublic, "description": "The body is not JSON."},
        401: {"model": ErrorPublic, "description": "No bearer key."},
        403: {"model": ErrorPublic, "description": "Not an admin key."},
        409: {"model": ErrorPublic, "description": "The warehouse or a dataset is busy; retry."},
        422: {"model": ErrorPublic, "description": "No ids, more than 1,000, or malformed."},
        503: {"model": ErrorPublic, "description": "No pseudonym key is configured."},
    },
)
def erase(_: AdminKeyDep, settings: SettingsDep, request: ErasureRequest) -> ErasurePublic:
    """Erase up to 1,000 users (by raw id) from the lake, the warehouse and the published
    datasets, and add them to the suppression list. Runs to completion before answering (it
    rewrites files); idempotent, so a request that failed can be sent again."""
    from dataclasses import asdict

    from flywheel.privacy import erase_users
    from ingest.keys import load_keyring

    keyring = load_keyring(settings.privacy.hmac_key_file)
    record = erase_users(settings, list(request.user_ids), keyring)
    return ErasurePublic(**asdict(record))
