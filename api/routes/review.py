"""Human review (docs/review.md): reviewers fetch the next item of a queue and answer it
(reviewer key); admins create queues and read the calibration and the suggested policy (admin
key); both read the rubric and the queues.

The routes call ``review.service`` in a worker thread: each call opens the warehouse for one
piece of work, so while a transform run holds it the answer is 409 ``busy`` with
``Retry-After``. Bodies are read after the key was checked (a refused key never gets its body
parsed), and a bad one is 422 naming each field's path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json
from starlette.concurrency import run_in_threadpool

from api.deps import AdminKeyDep, ReviewerDep, ReviewKeyDep, SettingsDep
from api.errors import ApiError, ErrorPublic
from api.routes.events import read_body
from review import service
from review.calibration import MIN_REVIEWS, CalibrationPublic, SuggestionPublic
from review.queues import (
    MAX_SEED,
    QUEUE_NAME,
    STRATUM,
    ItemPublic,
    QueuePublic,
    ReviewCreate,
    ReviewPublic,
    WholeNumber,
    blinded,
)
from review.rubric import Rubric

router = APIRouter(tags=["review"])

QueueParam = Annotated[str, Path(pattern=QUEUE_NAME, description="The queue's name.")]
ModelT = TypeVar("ModelT", bound=BaseModel)

AUTH_REVIEWER: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No bearer key."},
    403: {"model": ErrorPublic, "description": "Not a reviewer key, or one whose reviewer's id "
          "was erased (``reviewer_erased``)."},
}  # fmt: skip
AUTH_EITHER: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No bearer key."},
    403: {"model": ErrorPublic, "description": "Neither a reviewer nor an admin key."},
}
AUTH_ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No bearer key."},
    403: {"model": ErrorPublic, "description": "Not an admin key."},
}
BUSY: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorPublic, "description": "The warehouse is busy (a transform run): retry "
          "after ``Retry-After``; or, for a review, the reviewer already reviewed the item."},
    503: {"model": ErrorPublic, "description": "No pseudonym key is configured."},
}  # fmt: skip
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "No such queue (or item)."}
}


class QueueCreate(BaseModel):
    """A queue to sample: its name, what it samples, the seed, how many per stratum."""

    model_config = ConfigDict(extra="forbid")

    queue_id: str = Field(pattern=QUEUE_NAME)
    kind: Literal["pair", "label"] = "pair"
    """``pair``: preference pairs, judged side by side; ``label``: responses with their KTO
    label, judged good or bad one at a time."""
    seed: WholeNumber = Field(ge=0, le=MAX_SEED)
    per_stratum: WholeNumber = Field(ge=1, le=10_000)
    overlap: float = Field(default=0.1, ge=0, le=1)
    """Share of items that want two reviews (for the agreement between reviewers)."""
    # The pattern is stated in the schema; review.queues checks it, naming the stratum.
    strata: list[Annotated[str, Field(json_schema_extra={"pattern": STRATUM})]] | None = Field(
        default=None, min_length=1
    )
    """Only these strata (``signal/band/agreement``); all when unset."""


class QueueListPublic(BaseModel):
    """Every review queue, oldest first."""

    queues: list[QueuePublic]


class NextItemPublic(BaseModel):
    """The reviewer's next item; ``item`` is null when the queue has nothing left for them."""

    item: ItemPublic | None


def parse_body(body: bytes, model: type[ModelT]) -> ModelT:
    """The request body: 400 if it is not JSON, 422 with each field's path if it is the wrong
    shape (never the value)."""
    try:
        data = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON ({exc})", code="malformed_json") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, object]] = [
            {"path": ".".join(map(str, e["loc"])), "type": e["type"], "message": e["msg"]}
            for e in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise ApiError(
            422, "the request is invalid", code="invalid_request", errors=errors
        ) from None


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"application/json": {"schema": model.model_json_schema()}}
    return {"requestBody": {"required": True, "content": schema}}


@router.get("/v1/review/rubric", summary="The rubric reviewers score on",
            responses={**AUTH_EITHER})  # fmt: skip
async def get_rubric(_: ReviewKeyDep, settings: SettingsDep) -> Rubric:
    """Every dimension with its scale (``min`` to ``max``), what it asks and what its ends
    mean, and the rubric's sha256 (recorded with each review)."""
    return await run_in_threadpool(service.rubric, settings)


@router.get("/v1/review/queues", summary="List review queues",
            responses={**AUTH_EITHER, **BUSY})  # fmt: skip
async def list_queues(admin: ReviewKeyDep, settings: SettingsDep) -> QueueListPublic:
    """Every queue with its progress, and, for an admin key, its sampling (seed, strata)."""
    found = await run_in_threadpool(service.list_queues, settings)
    return QueueListPublic(queues=found if admin else [blinded(q) for q in found])


@router.post(
    "/v1/review/queues",
    summary="Create a review queue",
    status_code=201,
    openapi_extra=_json_body(QueueCreate),
    responses={
        **AUTH_ADMIN,
        **BUSY,
        400: {"model": ErrorPublic, "description": "The body is not JSON."},
        404: {
            "model": ErrorPublic,
            "description": "The warehouse has no pairs (or labels) with training consent yet.",
        },
        422: {"model": ErrorPublic, "description": "A bad field; ``errors`` names its path."},
    },
)
async def create_queue(_: AdminKeyDep, settings: SettingsDep, request: Request) -> QueuePublic:
    """Sample pairs with training consent into a new queue (or, with ``kind`` ``label``,
    labelled responses): up to ``per_stratum`` of every stratum (signal, confidence band,
    agreement), drawn by ``seed``; the same seed over the same pairs draws the same queue. 409
    if the name is taken; 422 naming ``strata`` if the strata asked for hold nothing."""
    body = parse_body(await read_body(request, settings.api.max_request_bytes), QueueCreate)
    return await run_in_threadpool(
        lambda: service.create_queue(
            settings, queue_id=body.queue_id, seed=body.seed, per_stratum=body.per_stratum,
            overlap=body.overlap, strata=body.strata, kind=body.kind,
        )
    )  # fmt: skip


@router.get("/v1/review/queues/{queue_id}", summary="A review queue",
            responses={**AUTH_EITHER, **BUSY, **NOT_FOUND})  # fmt: skip
async def get_queue(
    admin: ReviewKeyDep, settings: SettingsDep, queue_id: QueueParam
) -> QueuePublic:
    """The queue's progress, and, for an admin key, its sampling."""
    found = await run_in_threadpool(lambda: service.show_queue(settings, queue_id=queue_id))
    return found if admin else blinded(found)


@router.get("/v1/review/queues/{queue_id}/next", summary="The reviewer's next item",
            responses={**AUTH_REVIEWER, **BUSY, **NOT_FOUND})  # fmt: skip
async def next_item(
    reviewer: ReviewerDep, settings: SettingsDep, queue_id: QueueParam
) -> NextItemPublic:
    """The first item of the queue this reviewer has not reviewed that wants a review: the
    prompt and two answers (``left``, ``right``), in an order drawn for this reviewer (the
    same on every fetch), or for a label queue the one ``answer``; without the signals, the
    confidence, which side the pair preferred or the label."""
    item = await run_in_threadpool(
        lambda: service.next_item(settings, queue_id=queue_id, reviewer_id=reviewer)
    )
    return NextItemPublic(item=item)


@router.post(
    "/v1/review/queues/{queue_id}/reviews",
    summary="Answer an item",
    status_code=201,
    # The body's schema, with the configured rubric's dimensions, is set by api.main.
    openapi_extra=_json_body(ReviewCreate),
    responses={
        **AUTH_REVIEWER,
        **BUSY,
        **NOT_FOUND,
        400: {"model": ErrorPublic, "description": "The body is not JSON."},
        422: {
            "model": ErrorPublic,
            "description": "A bad field, a score off its scale, a dimension missing or unknown; "
            "``errors`` names each path (``scores.left.security``).",
        },
    },
)
async def submit_review(
    reviewer: ReviewerDep, settings: SettingsDep, queue_id: QueueParam, request: Request
) -> ReviewPublic:
    """``{"item_id": ..., "verdict": "left" | "right" | "tie" | "both_bad", "scores": {"left":
    {dimension: score, ...}, "right": {...}}}``, left and right as the item was shown to this
    reviewer; stored mapped back to the pair's chosen and rejected sides. For a label item,
    ``"verdict": "good" | "bad"`` and ``"scores": {"answer": {...}}``. Once per reviewer and
    item, and only while the item wants a review (409 after); the answer echoes the verdict as
    given, never which side the signals chose."""
    body = parse_body(await read_body(request, settings.api.max_request_bytes), ReviewCreate)
    return await run_in_threadpool(
        lambda: service.submit_review(
            settings, queue_id=queue_id, review=body, reviewer_id=reviewer
        )
    )


@router.get("/v1/review/calibration", summary="The signals' calibration by the reviews",
            responses={**AUTH_ADMIN, **BUSY, **NOT_FOUND})  # fmt: skip
async def get_calibration(
    _: AdminKeyDep,
    settings: SettingsDep,
    queue_id: Annotated[str | None, Query(pattern=QUEUE_NAME)] = None,
) -> CalibrationPublic:
    """Human precision per signal (Wilson intervals), of pairs all, unanimous and contested,
    Spearman of each reward level with each rubric dimension, agreement between reviewers; of
    one queue's reviews, or all."""
    return await run_in_threadpool(lambda: service.calibration(settings, queue_id=queue_id))


@router.get("/v1/review/policy-suggestion", summary="Weights the reviews suggest",
            responses={**AUTH_ADMIN, **BUSY, **NOT_FOUND})  # fmt: skip
async def get_policy_suggestion(
    _: AdminKeyDep,
    settings: SettingsDep,
    queue_id: Annotated[str | None, Query(pattern=QUEUE_NAME)] = None,
    min_reviews: Annotated[int, Query(ge=1)] = MIN_REVIEWS,
) -> SuggestionPublic:
    """Each signal's weight now and as suggested, and the unified diff of the policy file the
    transforms use (``FLYWHEEL_TRANSFORMS__POLICY_FILE``, else the shipped one); nothing is
    written (a person edits the policy)."""
    return await run_in_threadpool(
        lambda: service.suggest_policy(settings, queue_id=queue_id, min_reviews=min_reviews)
    )
