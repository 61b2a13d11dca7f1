"""The one place platform errors become HTTP responses, all in the ``ErrorPublic`` shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from flywheel.errors import (
    ConfigError,
    ContractError,
    ExportBusyError,
    FlywheelError,
    KafkaAuthError,
    NotFoundError,
    ReviewConflictError,
    ReviewerErasedError,
    ReviewInputError,
    SinkUnavailableError,
    WarehouseBusyError,
)

log = logging.getLogger(__name__)


class ErrorDetailPublic(BaseModel):
    """One problem with one event."""

    index: int | None = None
    """Position of the event in the request's ``events`` list (null for a single event)."""
    path: str
    """Field path inside the event, e.g. ``prompt[0].role``."""
    type: str
    """Machine-readable error type."""
    message: str
    """What is wrong, for people."""


class ErrorPublic(BaseModel):
    """Body of every 4xx and 5xx answer."""

    error: str
    """Short machine-readable code, e.g. ``invalid_events`` or ``unauthorized``."""
    message: str
    """What went wrong and what to do, for people."""
    errors: list[ErrorDetailPublic] = []
    """Per-event problems, for ``invalid_events``."""


class ApiError(Exception):
    """Raised by routes to answer with a given status and ``ErrorPublic`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        errors: list[dict[str, object]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or HTTPStatus(status).phrase.lower().replace(" ", "_")
        self.message = message
        self.errors = errors or []
        self.headers = headers


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    errors: list[dict[str, object]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An ``ErrorPublic`` JSON response."""
    body = {
        "error": code or HTTPStatus(status).phrase.lower().replace(" ", "_"),
        "message": message,
        "errors": errors or [],
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _not_stored(*, retry_after_s: float) -> JSONResponse:
    """503: the events were not stored (nothing was accepted); the client resends the request."""
    return error_response(
        503,
        "events could not be stored right now; nothing was accepted, resend the same request",
        code="unavailable",
        headers={"Retry-After": f"{retry_after_s:g}"},
    )


def _allowed_methods(request: Request, fallback: str) -> str:
    """Every method the OpenAPI document lists at the request's path (``fallback``, Starlette's
    own list, when it lists none). Starlette's 405 names only the first route that matches the
    path, and ``/v1/review/queues`` has a route per method."""
    import re

    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        pattern = re.sub(r"\\{[^}]*\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return ", ".join(sorted(methods)) if methods else fallback


def install(app: FastAPI) -> None:
    """Register the handlers that map errors to HTTP answers."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.message, code=exc.code, errors=exc.errors, headers=exc.headers
        )

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = exc.headers
        if exc.status_code == 405:
            fallback = (headers or {}).get("Allow", "")
            headers = {**(headers or {}), "Allow": _allowed_methods(request, fallback)}
        return error_response(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, object]] = [
            {"path": ".".join(map(str, e["loc"])), "type": e["type"], "message": e["msg"]}
            for e in exc.errors()
        ]
        return error_response(422, "the request is invalid", code="invalid_request", errors=errors)

    @app.exception_handler(ContractError)
    async def _contract_error(request: Request, exc: ContractError) -> JSONResponse:
        return error_response(422, str(exc), code="invalid_events", errors=exc.errors)

    @app.exception_handler(ReviewInputError)
    async def _review_invalid(request: Request, exc: ReviewInputError) -> JSONResponse:
        return error_response(422, str(exc), code="invalid_request", errors=exc.errors)

    @app.exception_handler(ReviewerErasedError)
    async def _reviewer_erased(request: Request, exc: ReviewerErasedError) -> JSONResponse:
        return error_response(403, str(exc), code="reviewer_erased")

    @app.exception_handler(ReviewConflictError)
    async def _review_conflict(request: Request, exc: ReviewConflictError) -> JSONResponse:
        return error_response(409, str(exc), code="conflict")

    @app.exception_handler(NotFoundError)
    async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, str(exc), code="not_found")

    @app.exception_handler(SinkUnavailableError)
    async def _unavailable(request: Request, exc: SinkUnavailableError) -> JSONResponse:
        log.warning("event sink unavailable", extra={"fields": {"reason": str(exc)}})
        return _not_stored(retry_after_s=exc.retry_after_s)

    @app.exception_handler(KafkaAuthError)
    async def _refused(request: Request, exc: KafkaAuthError) -> JSONResponse:
        # The operators' problem (credentials, certificates), not the client's: the reason goes
        # to the log and /readyz, the client is told to resend later.
        log.error("Kafka refused the API's producer", extra={"fields": {"reason": str(exc)}})
        return _not_stored(retry_after_s=30)

    @app.exception_handler(WarehouseBusyError)
    @app.exception_handler(ExportBusyError)
    async def _busy(request: Request, exc: FlywheelError) -> JSONResponse:
        # A dataset's export names the dataset; the warehouse's error names its path, which is
        # not the caller's business (a reviewer's client, say).
        message = (
            "the warehouse is being written (a transform run, an export or an erasure); "
            "retry after Retry-After"
            if isinstance(exc, WarehouseBusyError)
            else str(exc)
        )
        return error_response(409, message, code="busy", headers={"Retry-After": "30"})

    @app.exception_handler(ConfigError)
    async def _not_configured(request: Request, exc: ConfigError) -> JSONResponse:
        log.error("not configured", extra={"fields": {"error": str(exc)}})
        return error_response(503, str(exc), code="not_configured")

    @app.exception_handler(FlywheelError)
    async def _platform_error(request: Request, exc: FlywheelError) -> JSONResponse:
        log.error("request failed", extra={"fields": {"error": type(exc).__name__}})
        return error_response(500, "internal error", code="internal")
