"""The FastAPI application: ``create_app`` wires settings, the event sink and the routers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.erasures import ErasureQueue, ErasureRunner
from api.keys import ApiKeys
from api.metrics import ApiMetrics
from api.routes import datasets, events, meta, privacy, review
from api.sink import CachedReadiness, EventSink
from flywheel.settings import Settings
from ingest.contract import contract_json_schema

if TYPE_CHECKING:
    from console.app import ConsoleExtension

KNOWN_ROUTES = frozenset(
    {"/v1/events", "/v1/beacon", "/v1/schema", "/healthz", "/readyz", "/metrics"}
)


class RequestMetricsMiddleware:
    """Counts answered requests by method, route and status. The route is the matched path
    template (``/v1/review/queues/{queue_id}/next``, never the queue's name) for the API's
    routes, ``/console`` for the console's pages; a path no route matched is ``other``, so the
    labels stay few whatever clients send."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            # A request refused before routing (a body over the limit) has no route: its path.
            matched = getattr(scope.get("route"), "path", None)
            if isinstance(matched, str) and (
                matched in KNOWN_ROUTES or matched.startswith("/v1/") or matched == "/console"
            ):
                route = matched
            elif scope["path"] in KNOWN_ROUTES:
                route = scope["path"]
            else:
                route = "other"
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()


class BodyLimitMiddleware:
    """413 for any request whose declared body is over the limit, before a route reads a byte.

    The routes that read a body (``read_body``) also count it as it streams, for chunked bodies
    that declare no length; the other routes never read theirs.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope["headers"]).get(b"content-length", b"")
            if declared.isdigit() and int(declared) > self.limit:
                response = errors.error_response(
                    413, f"the body is {int(declared)} bytes; the limit is {self.limit}"
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _openapi_with_contract(app: FastAPI) -> dict[str, Any]:
    """The generated OpenAPI document plus the event contract, so clients see the body schema."""
    if app.openapi_schema:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    contract = contract_json_schema(
        max_text_chars=app.state.settings.contract.max_text_chars,
        ref_template="#/components/schemas/{model}",
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(contract.pop("$defs"))
    components["EventCreate"] = contract
    events = {
        "type": "array",
        "minItems": 1,
        "maxItems": app.state.settings.api.max_events_per_request,
        "items": {"$ref": "#/components/schemas/EventCreate"},
    }
    components["EventBatchCreate"] = {
        "title": "EventBatchCreate",
        "type": "object",
        "additionalProperties": False,
        "required": ["events"],
        "properties": {"events": events},
    }
    components["BeaconBatchCreate"] = {
        "title": "BeaconBatchCreate",
        "description": "A batch carrying its publishable key, for ``POST /v1/beacon`` without "
        "``?key=``.",
        "type": "object",
        "additionalProperties": False,
        "required": ["key", "events"],
        "properties": {
            "key": {"type": "string", "minLength": 1, "description": "A publishable key."},
            "events": events,
        },
    }
    _review_body(app, schema)
    app.openapi_schema = schema
    return schema


REVIEWS_PATH = "/v1/review/queues/{queue_id}/reviews"


def _review_body(app: FastAPI, schema: dict[str, Any]) -> None:
    """State the configured rubric in the review body's schema: each dimension, its scale."""
    from flywheel.errors import ConfigError
    from review.queues import review_create_schema
    from review.rubric import load_rubric

    try:
        rubric = load_rubric(app.state.settings.review.rubric_file)
    except ConfigError:  # the route answers 503 naming the problem; the document stays generic
        return
    operation = schema.get("paths", {}).get(REVIEWS_PATH, {}).get("post")
    if operation is not None:
        body = {"schema": review_create_schema(rubric)}
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}


def create_app(
    settings: Settings,
    sink: EventSink,
    *,
    metrics: ApiMetrics | None = None,
    erasure: ErasureRunner | None = None,
    clock: Callable[[], float] = time.monotonic,
    console_extensions: Sequence[ConsoleExtension] = (),
) -> FastAPI:
    """Build the API around an event sink (Kafka in production, in-process in embedded mode)
    and what finishes erasure requests in the background (the shell's ``finish_erasure``; the
    composition root passes it, since the API does not import the shell). Without ``erasure``
    the erasure endpoint answers 503. ``clock`` (monotonic seconds) refills the publishable
    keys' rate limits. With admin or reviewer keys configured, the web console (``console``) is
    mounted under ``/console``, with its review pages and the pages ``console_extensions``
    add."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.erasures.start()
        app.state.erasures.resume_unfinished()
        yield
        app.state.erasures.close()
        sink.close()

    app = FastAPI(
        title="Feedback Flywheel ingest API",
        version="1",
        description="Post implicit feedback events from a chat frontend (contract v1).",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sink = sink
    app.state.readiness = CachedReadiness(
        sink, max_age_s=settings.api.ready_cache_s, timeout_s=settings.api.ready_timeout_s
    )
    app.state.metrics = metrics or ApiMetrics()
    app.state.erasures = ErasureQueue(settings, app.state.metrics, erasure)
    app.state.keys = ApiKeys(settings.api, clock=clock)
    errors.install(app)
    app.include_router(events.router)
    app.include_router(meta.router)
    app.include_router(datasets.router)
    app.include_router(privacy.router)
    app.include_router(review.router)
    if settings.api.admin_keys or settings.api.reviewer_keys:
        from console.app import create_console
        from console.review import review_extensions

        extensions = [*review_extensions(), *console_extensions]
        app.mount("/console", create_console(settings, extensions=extensions))
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.api.browser_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
        # A browser client waits as told after a 429 or a 503: it must be able to read this.
        expose_headers=["Retry-After"],
        # Keys travel in a header, the query or the body, so cookies (credentials) are never
        # needed.
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(BodyLimitMiddleware, limit=settings.api.max_request_bytes)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: _openapi_with_contract(app)  # type: ignore[method-assign]
    return app
