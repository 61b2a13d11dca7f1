"""Dependencies the routes declare, as ``Annotated`` aliases; the key checks of every route.

Which key a route takes (``api.keys``): ``POST /v1/events`` a write or a publishable key (bearer),
``POST /v1/beacon`` a publishable key in the query or the body, the datasets a reader or an admin
key, erasure an admin key; the review routes a reviewer key (items and reviews), a reviewer or
an admin key (the rubric and the queues), an admin key (creating queues, the calibration). A
missing key is 401, a key of another kind 403.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from api.erasures import ErasureQueue
from api.keys import ApiKeys, BrowserKey, Caller
from api.metrics import ApiMetrics
from api.sink import CachedReadiness, EventSink
from flywheel.settings import Settings

log = logging.getLogger(__name__)


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


async def get_keys(request: Request) -> ApiKeys:
    """The configured keys and their scopes."""
    keys: ApiKeys = request.app.state.keys
    return keys


# Dependencies are ``async def`` although they never await: FastAPI runs plain ``def``
# dependencies in a worker thread, four thread hops per request for nothing.
SettingsDep = Annotated[Settings, Depends(get_settings)]
SinkDep = Annotated[EventSink, Depends(get_sink)]
ReadinessDep = Annotated[CachedReadiness, Depends(get_readiness)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
ErasureQueueDep = Annotated[ErasureQueue, Depends(get_erasure_queue)]
KeysDep = Annotated[ApiKeys, Depends(get_keys)]


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


def check_origin(request: Request, browser: BrowserKey) -> None:
    """403 unless the request's ``Origin`` header is one of the publishable key's origins."""
    origin = request.headers.get("origin")
    if origin is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "a publishable key is accepted only from its origins, and this request has no "
            "Origin header",
        )
    if origin not in browser.origins:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this publishable key is not accepted from this origin"
        )


def browser_caller(request: Request, keys: ApiKeys, token: str) -> Caller:
    """The caller of ``POST /v1/beacon``: a publishable key, sent from one of its origins.

    A write, reader or admin key is refused there: it travelled in a URL (or a body a page can
    read), where proxies and browsers keep it. The log says so, so that it is replaced.
    """
    caller = keys.identify(token)
    if caller.browser is None:
        if caller.scopes:
            log.warning(
                "a secret key was sent to /v1/beacon and refused; replace it",
                extra={"fields": {"scopes": sorted(caller.scopes)}},
            )
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "only publishable keys are accepted here; a secret key never belongs in a URL "
                "or a web page (replace this one)",
            )
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this is not a publishable key")
    check_origin(request, caller.browser)
    return caller


# The schemes only document which key a route takes (OpenAPI ``security``, one alternative
# each); ``_bearer`` reads the header itself, for answers that say which key is missing.
_WRITE_SCHEME = HTTPBearer(
    scheme_name="WriteKey", description="A write key (backends).", auto_error=False
)
_PUBLISHABLE_SCHEME = HTTPBearer(
    scheme_name="PublishableKey",
    description="A publishable key (browsers), from one of its origins.",
    auto_error=False,
)
_BEACON_SCHEME = APIKeyQuery(
    name="key",
    scheme_name="PublishableKeyQuery",
    description='A publishable key in the query (or ``{"key": ..., "events": [...]}`` in the '
    "body), from one of its origins.",
    auto_error=False,
)
_READER_SCHEME = HTTPBearer(
    scheme_name="ReaderKey", description="A reader key (datasets).", auto_error=False
)
_ADMIN_SCHEME = HTTPBearer(scheme_name="AdminKey", description="An admin key.", auto_error=False)
_REVIEWER_SCHEME = HTTPBearer(
    scheme_name="ReviewerKey", description="A reviewer key (review queues).", auto_error=False
)
Credentials = HTTPAuthorizationCredentials | None
# A dependency names the schemes of the keys it takes, one parameter each.
ReaderBearer = Annotated[Credentials, Depends(_READER_SCHEME)]
AdminBearer = Annotated[Credentials, Depends(_ADMIN_SCHEME)]
ReviewerBearer = Annotated[Credentials, Depends(_REVIEWER_SCHEME)]


async def require_event_key(
    request: Request,
    keys: KeysDep,
    _write: Annotated[Credentials, Depends(_WRITE_SCHEME)],
    _publishable: Annotated[Credentials, Depends(_PUBLISHABLE_SCHEME)],
) -> Caller:
    """401 without a bearer token, 403 with one that is neither a write key nor a publishable
    key sent from one of its origins."""
    caller = keys.identify(_bearer(request, "write or publishable"))
    if "write" in caller.scopes:
        return caller
    if caller.browser is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key may not post events")
    check_origin(request, caller.browser)
    return caller


async def beacon_query_key(
    key: Annotated[str | None, Depends(_BEACON_SCHEME)],
) -> str | None:
    """The key of ``?key=``, if given (the route looks in the body otherwise)."""
    return key


def _require_either(
    request: Request, keys: ApiKeys, kinds: tuple[str, str], refusal: str
) -> frozenset[str]:
    """The caller's scopes; 401 without a bearer token, 403 (``refusal``) with one that has
    neither of the scopes ``kinds``."""
    caller = keys.identify(_bearer(request, " or ".join(kinds)))
    if not caller.scopes & set(kinds):
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal)
    return frozenset(caller.scopes)


async def require_reader_key(
    request: Request, keys: KeysDep, _reader: ReaderBearer, _admin: AdminBearer
) -> None:
    """401 without a bearer token, 403 with one that is neither a reader nor an admin key."""
    _require_either(request, keys, ("reader", "admin"), "this key may not read datasets")


async def require_admin_key(request: Request, keys: KeysDep, _: AdminBearer) -> None:
    """401 without a bearer token, 403 with one that is not an admin key."""
    if "admin" not in keys.identify(_bearer(request, "admin")).scopes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key is not an admin key")


async def require_reviewer_key(request: Request, keys: KeysDep, _: ReviewerBearer) -> str:
    """The reviewer's id (as configured); 401 without a bearer token, 403 with one that is not
    a reviewer key."""
    caller = keys.identify(_bearer(request, "reviewer"))
    if "reviewer" not in caller.scopes or caller.reviewer is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this key is not a reviewer key")
    return caller.reviewer


async def require_review_key(
    request: Request, keys: KeysDep, _reviewer: ReviewerBearer, _admin: AdminBearer
) -> bool:
    """True for an admin key, False for a reviewer key; 401 without a bearer token, 403 with
    one that is neither."""
    scopes = _require_either(
        request, keys, ("reviewer", "admin"), "this key may not read review queues"
    )
    return "admin" in scopes


EventKeyDep = Annotated[Caller, Depends(require_event_key)]
BeaconQueryKeyDep = Annotated[str | None, Depends(beacon_query_key)]
ReaderKeyDep = Annotated[None, Depends(require_reader_key)]
AdminKeyDep = Annotated[None, Depends(require_admin_key)]
ReviewerDep = Annotated[str, Depends(require_reviewer_key)]
"""The reviewer's id, as configured: pseudonymised by the review stage before it is stored."""
ReviewKeyDep = Annotated[bool, Depends(require_review_key)]
"""True for an admin key: it sees a queue's sampling (seed, strata), a reviewer does not."""
