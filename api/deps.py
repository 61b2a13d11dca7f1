"""Dependencies the routes declare, as ``Annotated`` aliases."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.erasures import ErasureQueue
from api.metrics import ApiMetrics
from api.sink import CachedReadiness, EventSink
from flywheel.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_sink(request: Request) -> EventSink:
    """The sink accepted events are handed to."""
    sink: EventSink = request.app.state.sink
    return sink


async def get_readiness(request: Request) -> CachedReadiness:
    """The sink's readiness, cached."""
    readiness: CachedReadiness = request.app.state.readiness
    return readiness


async def get_metrics(request: Request) -> ApiMetrics:
    """The app's Prometheus metrics."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


async def get_erasure_queue(request: Request) -> ErasureQueue:
    """The queue that finishes accepted erasure requests."""
    queue: ErasureQueue = request.app.state.erasures
    return queue


# Dependencies are ``async def`` although they never await: FastAPI runs plain ``def``
# dependencies in a worker thread, four thread hops per request for nothing.
SettingsDep = Annotated[Settings, Depends(get_settings)]
SinkDep = Annotated[EventSink, Depends(get_sink)]
ReadinessDep = Annotated[CachedReadiness, Depends(get_readiness)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
ErasureQueueDep = Annotated[ErasureQueue, Depends(get_erasure_queue)]


def _bearer(request: Request, kind: str) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"missing Authorization header; send 'Authorization: Bearer <{kind} key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"the Authorization header must be 'Bearer <{kind} key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def _matches(token: str, keys: list[str]) -> bool:
    # compare_digest against every key, so timing does not tell which key was close.
    found = False
    for key in keys:
        found |= hmac.compare_digest(token.encode(), key.encode())
    return found


# The schemes only document which key a route takes (OpenAPI ``security``); ``_bearer`` reads
# the header itself, for answers that say which key is missing.
_WRITE_SCHEME = HTTPBearer(scheme_name="WriteKey", description="A write key.", auto_error=False)
_ADMIN_SCHEME = HTTPBearer(scheme_name="AdminKey", description="An admin key.", auto_error=False)
Credentials = HTTPAuthorizationCredentials | None


async def require_write_key(
    request: Request, settings: SettingsDep, _: Annotated[Credentials, Depends(_WRITE_SCHEME)]
) -> None:
    """401 without a bearer token, 403 with one that is not a write key."""
    token = _bearer(request, "write")
    keys = [key.get_secret_value() for key in settings.api.write_keys]
    if not _matches(token, keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key may not write events")


async def require_admin_key(
    request: Request, settings: SettingsDep, _: Annotated[Credentials, Depends(_ADMIN_SCHEME)]
) -> None:
    """401 without a bearer token, 403 with one that is not an admin key."""
    token = _bearer(request, "admin")
    keys = [key.get_secret_value() for key in settings.api.admin_keys]
    if not _matches(token, keys):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key is not an admin key")


WriteKeyDep = Annotated[None, Depends(require_write_key)]
AdminKeyDep = Annotated[None, Depends(require_admin_key)]
