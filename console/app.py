"""The console's ASGI app, mounted by the API under ``/console``: login, the pages, static files.

Every page needs a session (``console.sessions``): without one a page redirects to the login
page and a data route (``/data/...``) answers 401. Pages are rendered from the package's Jinja2
templates; CSS and JavaScript come from the package's ``static`` folder; the Content-Security-
Policy allows nothing from another origin, no inline script and no inline style.

Other modules add pages through ``ConsoleExtension`` (a router, and an entry in the navigation
shown only when it is given): the review queues plug in there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from console import charts
from console.reader import Memo
from console.sessions import COOKIE, Role, Session, SessionSigner
from flywheel.errors import (
    ConfigError,
    ExportError,
    ManifestVersionError,
    VersionNotFoundError,
    WarehouseBusyError,
    WarehouseError,
)
from flywheel.files import packaged
from flywheel.settings import Settings

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
MAX_LOGIN_BYTES = 4096


@dataclass(frozen=True)
class NavItem:
    """An entry of the navigation: its label, its path under the console, who sees it."""

    key: str
    label: str
    path: str
    roles: tuple[Role, ...] = ("admin",)


@dataclass(frozen=True)
class ConsoleExtension:
    """Pages another module adds to the console: its routes (paths under ``/console``, each
    calling ``require_session``) and its entry in the navigation."""

    nav: NavItem
    router: APIRouter


NAV: tuple[NavItem, ...] = (
    NavItem("overview", "Overview", "/"),
    NavItem("signals", "Signals", "/signals"),
    NavItem("pairs", "Pairs", "/pairs"),
    NavItem("datasets", "Datasets", "/datasets"),
)
REVIEW = NavItem("review", "Review", "/review", roles=("admin", "reviewer"))
"""The review queues' place in the navigation (``console.review``)."""
CALIBRATION = NavItem("calibration", "Calibration", "/calibration")
"""The reviews' calibration and suggested policy, for admins (``console.review``)."""


class LoginRequired(Exception):
    """No valid session: pages redirect to the login page, data routes answer 401."""


class NotAllowed(Exception):
    """A valid session whose role may not see the page: 403."""


class SecurityHeaders:
    """Adds the console's security headers, and ``Cache-Control: no-store`` to every page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


@dataclass
class Console:
    """What the routes share: settings, the session signer, templates, extensions."""

    settings: Settings
    signer: SessionSigner
    templates: Any
    nav: list[NavItem]
    reviewers: bool
    """Whether reviewer keys may log in (the login page says which keys it takes)."""
    reviewer_ids: dict[str, str] = field(default_factory=dict)
    """The configured reviewer id of each reviewer key's fingerprint (never sent to a page)."""
    clock: Callable[[], float] = time.time
    memo: Memo = field(default_factory=Memo)

    def render(
        self, request: Request, template: str, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session: Session | None = getattr(request.state, "session", None)
        base = request.scope.get("root_path", "")
        nav = [item for item in self.nav if session is None or session.role in item.roles]
        html = self.templates.get_template(template).render(
            base=base, nav=nav if session else [], session=session, reviewers=self.reviewers,
            active=context.pop("active", None), **context,
        )  # fmt: skip
        return HTMLResponse(html, status_code=status)


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def require_session(request: Request, roles: Sequence[Role] = ("admin",)) -> Session:
    """The request's valid session with one of ``roles``: ``LoginRequired`` without a valid
    session, ``NotAllowed`` with a session of another role."""
    console = _console(request)
    session = console.signer.check(request.cookies.get(COOKIE), ("admin", "reviewer"))
    if session is None:
        raise LoginRequired
    request.state.session = session
    if session.role not in roles:
        raise NotAllowed
    return session


def _landing(console: Console, role: Role, base: str) -> str:
    """Where a role lands after login: the first page of the navigation it may see."""
    allowed = [item.path for item in console.nav if role in item.roles]
    return base + (allowed[0] if allowed else "/")


def _safe_next(value: str | None, base: str) -> str:
    """Where to go after login: a path of the console only (never another site)."""
    if not value:
        return base + "/"
    parts = urlsplit(value)
    if (
        parts.scheme
        or parts.netloc
        or not value.startswith(base + "/")
        or "\\" in value
        or ".." in parts.path
    ):
        return base + "/"
    return value


def _templates() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(packaged("console", "templates"))),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda v: "" if v is None else f"{v:,}"
    env.filters["share"] = lambda v: "n/a" if v is None else f"{v:.3f}"
    env.filters["when"] = _when
    env.filters["short"] = lambda v, n=12: "" if v is None else str(v)[:n]
    env.filters["q"] = lambda v: quote(str(v), safe="")
    return env


def _when(value: datetime | None) -> str:
    if value is None:
        return "never"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "n/a"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = max(0, int((now - value).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def create_console(
    settings: Settings,
    *,
    extensions: Sequence[ConsoleExtension] = (),
    reviewer_keys: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The console app for ``settings``: its admin keys log in as ``admin``, reviewer keys
    (``reviewer_keys``, key to reviewer id; by default ``settings.api.reviewer_keys``) as
    ``reviewer``, who sees only the pages whose navigation entry names that role; ``extensions``
    add pages (the review queues', ``console.review.review_extensions``)."""
    if reviewer_keys is None:
        reviewer_keys = {r.key.get_secret_value(): r.reviewer for r in settings.api.reviewer_keys}
    keys: dict[str, Role] = dict.fromkeys(reviewer_keys, "reviewer")
    keys |= {k.get_secret_value(): "admin" for k in settings.api.admin_keys}
    signer = SessionSigner.from_keys(keys, clock=clock)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    nav = list(NAV) + [ext.nav for ext in extensions]
    app.state.console = Console(
        settings=settings, signer=signer, templates=_templates(), nav=nav,
        reviewers=bool(reviewer_keys), clock=clock,
        reviewer_ids={signer.fingerprint(k): who for k, who in reviewer_keys.items()},
    )  # fmt: skip
    from console.reader import prepare

    prepare()
    app.mount("/static", StaticFiles(directory=packaged("console", "static")), name="static")
    app.add_middleware(SecurityHeaders)
    _install_errors(app)
    app.include_router(_auth_router())
    app.include_router(_pages_router())
    for ext in extensions:
        app.include_router(ext.router)
    return app


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        base = request.scope.get("root_path", "")
        if request.url.path.startswith(f"{base}/data/"):
            return JSONResponse(
                {"error": "unauthorized", "message": "log in to the console first"},
                status_code=401,
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{base}/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> Response:
        base = request.scope.get("root_path", "")
        if request.url.path.startswith(f"{base}/data/"):
            return JSONResponse(
                {"error": "forbidden", "message": "this key may not read this"}, status_code=403
            )
        return _console(request).render(
            request, "problem.html", status=403, title="Not for this key",
            message="The key you logged in with may not see this page.",
        )  # fmt: skip

    @app.exception_handler(WarehouseBusyError)
    async def _busy(request: Request, exc: WarehouseBusyError) -> Response:
        # The same words whatever was busy: the error's own names the warehouse's path.
        message = "The warehouse is being written (a transform run, an export or an erasure)."
        if request.method == "POST":
            message += " Nothing was saved: go back and send the form again in a moment."
        else:
            message += " Try again in a moment."
        response = _console(request).render(
            request, "problem.html", status=503, title="Busy", message=message
        )
        response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(ConfigError)
    async def _not_configured(request: Request, exc: ConfigError) -> Response:
        # An invalid rubric file, a missing pseudonym key: the operator's to mend, in the log.
        log.error("console page not configured", extra={"fields": {"error": str(exc)}})
        return _console(request).render(
            request, "problem.html", status=503, title="Not configured",
            message="The server's configuration is incomplete or invalid for this page; its "
            "log says what to change.",
        )  # fmt: skip

    @app.exception_handler(WarehouseError)
    async def _warehouse(request: Request, exc: WarehouseError) -> Response:
        log.warning("console page without the warehouse", extra={"fields": {"error": str(exc)}})
        return _console(request).render(
            request, "problem.html", title="No warehouse", message=str(exc)
        )


def _auth_router() -> APIRouter:
    router = APIRouter()

    @router.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str | None = None) -> Response:
        base = request.scope.get("root_path", "")
        # Without a page to return to, the role's landing page is chosen after login.
        target = _safe_next(next, base) if next else ""
        return _console(request).render(request, "login.html", next=target, error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        console = _console(request)
        base = request.scope.get("root_path", "")
        if request.headers.get("sec-fetch-site") == "cross-site":
            # Another site's form logging the browser in under a key of its choosing (login
            # CSRF): the browser says where the form came from; the session cookie's
            # SameSite cannot cover a login, which needs no cookie.
            log.warning("console login from another site refused")
            return console.render(
                request, "login.html", status=403, next=base + "/",
                error="A login from another site is refused: open this page and log in here.",
            )  # fmt: skip
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_LOGIN_BYTES:
                return console.render(
                    request, "login.html", status=413, next=base + "/", error="too long"
                )
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        key = (form.get("key") or [""])[0].strip()
        wanted = (form.get("next") or [""])[0]
        role = console.signer.role_of(key) if key else None
        value = console.signer.issue(key) if role else None
        if role is None or value is None:
            # The key is never logged, nor any part of it.
            log.warning("console login refused")
            return console.render(
                request, "login.html", status=401, next=_safe_next(wanted, base),
                error="That is not an admin key." if not console.reviewers
                else "That is neither an admin nor a reviewer key.",
            )  # fmt: skip
        target = _safe_next(wanted, base) if wanted else _landing(console, role, base)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE, value, max_age=console.signer.ttl_s, path=base or "/", httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(COOKIE, path=base or "/", httponly=True, samesite="strict")
        return response

    return router


def _float(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        return None


async def _off_loop(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """DuckDB work in a worker thread: the event loop keeps serving the API meanwhile."""
    return await asyncio.to_thread(partial(function, *args, **kwargs))


def _pages_router() -> APIRouter:
    import export.differences as published
    from console import queries
    from console.reader import reading, state

    router = APIRouter()

    def read_overview(console: Console) -> tuple[queries.Overview, bool]:
        settings = console.settings
        key = ("overview", *state(settings.data_dir))
        found = console.memo.get(key)
        if found is None:
            with reading(settings.data_dir) as db:
                found = console.memo.put(key, queries.overview(db))
        found = dataclasses.replace(found)  # the lake's files are counted now, not kept
        local = settings.lake_location.is_local
        if local:
            root = settings.lake_location.child("events").local_path()
            found.pending_files, found.oldest_pending = queries.pending_lake_files(
                found.loaded, root
            )
        return found, local

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        require_session(request)
        console = _console(request)
        found, local = await _off_loop(read_overview, console)
        days, by_type = queries.pivot(found.by_day, category="day", series="type", value="events")
        chart = charts.stacked_bars(
            "Events per day by type", days, [charts.Series(k, v) for k, v in by_type.items()]
        )
        landed_days = [str(r["day"]) for r in found.landed]
        landed_chart = charts.stacked_bars(
            "Lake rows per landing day",
            landed_days,
            [
                charts.Series("loaded", [float(r["loaded"] or 0) for r in found.landed]),
                charts.Series("withheld (consent)", [float(r["withheld"]) for r in found.landed]),
                charts.Series(
                    "not loaded (copies)", [float(r["not_loaded"]) for r in found.landed]
                ),
            ],
        )
        now = datetime.fromtimestamp(console.clock(), UTC)
        return console.render(
            request, "overview.html", active="overview", o=found, chart=chart,
            landed_chart=landed_chart, local_lake=local, embedded=console.settings.embedded,
            since_event=_ago(found.newest_event, now), since_load=_ago(found.newest_load, now),
            since_pending=_ago(found.oldest_pending, now),
        )  # fmt: skip

    @router.get("/data/overview.json")
    async def overview_data(request: Request) -> Response:
        require_session(request)
        found, _ = await _off_loop(read_overview, _console(request))
        return JSONResponse(
            {
                "events": found.events,
                "withheld": found.withheld,
                "lake_files": found.lake_files,
                "rows_read": found.rows_read,
                "not_loaded": found.not_loaded,
                "pending_files": found.pending_files,
                "events_by_day": found.by_day,
            }  # fmt: skip
        )

    def read_signals(console: Console) -> dict[str, Any]:
        key = ("signals", *state(console.settings.data_dir))
        found: dict[str, Any] | None = console.memo.get(key)
        if found is not None:
            return found
        with reading(console.settings.data_dir) as db:
            pairs, labels = queries.signals_per_day(db)
            found = {
                "pairs": pairs,
                "labels": labels,
                "totals": queries.signal_totals(pairs, labels),
                "calibration": queries.calibration(db),
            }
        return console.memo.put(key, found)

    @router.get("/signals", response_class=HTMLResponse)
    async def signals(request: Request) -> Response:
        require_session(request)
        console = _console(request)
        found = await _off_loop(read_signals, console)
        drawn = {}
        for kind in ("pairs", "labels"):
            days, series = queries.pivot(found[kind], category="day", series="signal", value="n")
            drawn[kind] = charts.lines(
                f"{kind.capitalize()} per signal per day", days,
                [charts.Series(k, v) for k, v in series.items()],
            )  # fmt: skip
        calibration_charts = {}
        for explicit in sorted({row["explicit"] for row in found["calibration"]}):
            rows = [r for r in found["calibration"] if r["explicit"] == explicit]
            calibration_charts[explicit] = charts.error_bars(
                f"Agreement with {explicit}",
                [
                    charts.Interval(
                        r["signal"], r["agreement"], r["wilson_low"], r["wilson_high"], int(r["n"])
                    )  # fmt: skip
                    for r in rows
                ],
            )
        return console.render(
            request, "signals.html", active="signals", found=found, pairs_chart=drawn["pairs"],
            labels_chart=drawn["labels"], calibration_charts=calibration_charts,
        )  # fmt: skip

    @router.get("/pairs", response_class=HTMLResponse)
    async def pairs(
        request: Request,
        signal: str | None = None,
        model: str | None = None,
        min_confidence: str | None = None,
        max_confidence: str | None = None,
        disagreement: str | None = None,
        page: int = 1,
    ) -> Response:
        require_session(request)
        console = _console(request)
        where = queries.PairFilter(
            signal=signal or None, model=model or None,
            min_confidence=_float(min_confidence), max_confidence=_float(max_confidence),
            disagreement=disagreement if disagreement in ("none", "some") else None,
        )  # fmt: skip

        def read(settings: Settings) -> queries.PairPage:
            with reading(settings.data_dir) as db:
                return queries.pair_page(db, where, page)

        found = await _off_loop(read, console.settings)
        query = {
            k: v
            for k, v in {
                "signal": where.signal,
                "model": where.model,
                "min_confidence": min_confidence,
                "max_confidence": max_confidence,
                "disagreement": where.disagreement,
            }.items()  # fmt: skip
            if v
        }
        return console.render(
            request, "pairs.html", active="pairs", found=found, where=where, query=query,
            min_confidence=min_confidence or "", max_confidence=max_confidence or "",
        )  # fmt: skip

    @router.get("/pairs/{pair_id}", response_class=HTMLResponse)
    async def pair(request: Request, pair_id: str) -> Response:
        require_session(request)
        console = _console(request)

        def read(settings: Settings) -> queries.PairDetail | None:
            from warehouse.lake import open_lake

            def lake_root(files: list[str]) -> Path | None:
                lake = open_lake(settings, check=False)
                return lake.readable_root(files)

            with reading(settings.data_dir) as db:
                return queries.pair_detail(db, pair_id, lake_root)

        found = await _off_loop(read, console.settings)
        if found is None:
            return console.render(
                request, "problem.html", status=404, title="No such pair",
                message="There is no pair with this id (a transform run may have replaced it).",
            )  # fmt: skip
        return console.render(request, "pair.html", active="pairs", p=found)

    @router.get("/datasets", response_class=HTMLResponse)
    async def datasets(request: Request) -> Response:
        require_session(request)
        console = _console(request)

        def read(settings: Settings) -> dict[str, list[published.VersionRow]]:
            from export.catalog import open_catalog

            return published.versions(open_catalog(settings, check=False))

        found = await _off_loop(read, console.settings)
        return console.render(request, "datasets.html", active="datasets", found=found)

    @router.get("/datasets/{name}/versions/{version}", response_class=HTMLResponse)
    async def dataset_version(request: Request, name: str, version: str) -> Response:
        require_session(request)
        console = _console(request)

        def read(settings: Settings) -> Any:
            from export.catalog import open_catalog

            return open_catalog(settings, check=False).read_manifest(name, version)

        try:
            manifest = await _off_loop(read, console.settings)
        except ManifestVersionError as exc:
            return console.render(
                request, "problem.html", status=500, title="Newer manifest", message=str(exc)
            )
        except ExportError as exc:
            return console.render(
                request, "problem.html", status=404, title="No such version", message=str(exc)
            )
        version = manifest.version or version  # ``latest`` shows the version it stands for
        return console.render(
            request, "version.html", active="datasets", name=name, version=version, m=manifest
        )

    @router.get("/datasets/{name}/diff", response_class=HTMLResponse)
    async def dataset_diff(
        request: Request,
        name: str,
        a: str | None = None,
        b: str | None = None,
        changes: bool = False,
    ) -> Response:
        require_session(request)
        console = _console(request)

        def read(settings: Settings) -> tuple[list[str], published.VersionDiff | None]:
            from export.catalog import open_catalog

            catalog = open_catalog(settings, check=False)
            known = catalog.versions(name)
            if not known:
                raise VersionNotFoundError(f"there is no dataset {name!r}")
            first = a or (known[-2] if len(known) > 1 else known[-1])
            second = b or known[-1]
            # Versions never change but by an erasure, which supersedes them (and may delete
            # their files): the manifests' state is part of the key.
            marks = tuple(
                (m.created_at, m.superseded_by)
                for m in (catalog.read_manifest(name, v) for v in (first, second))
            )
            key = ("diff", name, first, second, changes, marks)
            found = console.memo.get(key)
            if found is None:
                # Kept on disk too: a restarted server or another worker reads it from there.
                cache = settings.data_dir / published.DIFF_CACHE
                found = published.diff(catalog, name, first, second, changes=changes, cache=cache)
                console.memo.put(key, found)
            return known, found

        try:
            known, found = await _off_loop(read, console.settings)
        except ExportError as exc:
            return console.render(
                request, "problem.html", status=404, title="Cannot compare", message=str(exc)
            )
        return console.render(
            request, "diff.html", active="datasets", name=name, known=known, d=found
        )

    return router
