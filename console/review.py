"""The console's review pages, calling ``review.service``: the queues (admins and reviewers; an
admin samples a new one with the page's form), one item at a time with its verdict and rubric
form (reviewers), the calibration and the suggested policy of every queue or one (admins).

A reviewer's session names the fingerprint of their key; the configured reviewer id is looked
up here and handed to ``review.service``, which pseudonymises it before anything is stored or
logged. The item form posts back to its page with the session's CSRF token and redirects (POST,
redirect, GET); it works without JavaScript, ``static/console.js`` adds the keyboard.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

import review.service as service
from console import charts
from console.app import (
    CALIBRATION,
    REVIEW,
    Console,
    ConsoleExtension,
    _console,
    _off_loop,
    require_session,
)
from console.sessions import COOKIE
from flywheel.errors import NotFoundError, ReviewConflictError, ReviewInputError
from review.queues import MAX_SEED, SIDES, ReviewCreate, blinded

MAX_FORM_BYTES = 8192
VERDICTS = {
    "pair": (
        ("left", "Left is better", "1 or ←"),
        ("right", "Right is better", "2 or →"),
        ("tie", "Tie", "3 or t"),
        ("both_bad", "Both bad", "4 or b"),
    ),
    "label": (("good", "Good", "1 or g"), ("bad", "Bad", "2 or b")),
}
"""The verdicts a reviewer may give on an item of each kind: value, label, keys."""


def review_extensions() -> list[ConsoleExtension]:
    """The review queues (admins and reviewers) and the calibration (admins)."""
    return [
        ConsoleExtension(nav=REVIEW, router=_queues_router()),
        ConsoleExtension(nav=CALIBRATION, router=_calibration_router()),
    ]


def _reviewer_id(console: Console, request: Request) -> str:
    """The configured id of the reviewer whose session this is."""
    session = require_session(request, roles=("reviewer",))
    return console.reviewer_ids[session.key]


def _problem(
    console: Console, request: Request, status: int, title: str, exc: Exception
) -> Response:
    return console.render(request, "problem.html", status=status, title=title, message=str(exc))


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields (the first value of each); None when it is too long."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=64)
    return {name: values[0] for name, values in parsed.items()}


def _review_of(form: dict[str, str], dimensions: list[str]) -> ReviewCreate:
    """The review a form describes (``ValidationError`` naming each bad field). The form's
    ``kind`` says which sides it scores; the review stage checks it against the item."""
    sides = SIDES["label"] if form.get("kind") == "label" else SIDES["pair"]
    scores: dict[str, dict[str, Any]] = {side: {} for side in sides}
    for side, found in scores.items():
        for name in dimensions:
            raw = form.get(f"{side}.{name}", "").strip()
            try:
                found[name] = int(raw)
            except ValueError:
                found[name] = raw or None
    return ReviewCreate.model_validate(
        {"item_id": form.get("item_id", ""), "verdict": form.get("verdict", ""), "scores": scores}
    )


def _field(loc: list[str], message: str) -> str:
    """A problem with a field, named as the form shows it."""
    names = {"verdict": "the verdict", "item_id": "the item"}
    if loc[:1] == ["scores"] and len(loc) >= 3:
        side = "" if loc[1] == "answer" else f"{loc[1]} "
        return f"{loc[2]} of the {side}answer: {message}"
    return f"{names.get(loc[0], loc[0]) if loc else 'form'}: {message}"


def _field_errors(exc: ValidationError | ReviewInputError) -> list[str]:
    """Each bad field of a refused review."""
    if isinstance(exc, ReviewInputError):
        found = [_field(str(e["path"]).split("."), str(e["message"])) for e in exc.errors]
        return found or [str(exc)]
    return [_field([str(part) for part in e["loc"]], e["msg"]) for e in exc.errors()]


QUEUE_DEFAULTS = {"per_stratum": "20", "overlap": "0.2"}
"""What the new-queue form proposes (the seed is drawn for each form)."""


def _queue_request(form: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The ``create_queue`` arguments a new-queue form gives, and each field it got wrong."""
    problems = []
    numbers: dict[str, Any] = {}
    for name, kind, label in (("seed", int, "a whole number"),
                              ("per_stratum", int, "a whole number"),
                              ("overlap", float, "a number")):  # fmt: skip
        raw = form.get(name, "").strip()
        try:
            numbers[name] = kind(raw)
        except ValueError:
            problems.append(f"{name}: must be {label}")
    strata = [part.strip() for part in form.get("strata", "").split(",") if part.strip()]
    return {"queue_id": form.get("queue_id", "").strip(), "strata": strata or None,
            "kind": form.get("kind", "pair"), **numbers}, problems  # fmt: skip


def _queues_router() -> APIRouter:
    router = APIRouter()

    async def queues_page(
        request: Request, *, status: int = 200, errors: list[str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        session = require_session(request, roles=("admin", "reviewer"))
        console = _console(request)
        found = await _off_loop(service.list_queues, console.settings)
        if session.role != "admin":
            found = [blinded(q) for q in found]
        proposed = QUEUE_DEFAULTS | {"seed": str(secrets.randbelow(MAX_SEED + 1))}
        return console.render(
            request, "review_queues.html", status=status, active="review", queues=found,
            errors=errors or [], form=proposed | (form or {}),
            created=request.query_params.get("created"),
            csrf=(console.signer.csrf_token(request.cookies.get(COOKIE, ""))
                  if session.role == "admin" else ""),
        )  # fmt: skip

    @router.get("/review", response_class=HTMLResponse)
    async def queues(request: Request) -> Response:
        return await queues_page(request)

    @router.post("/review")
    async def create(request: Request) -> Response:
        """An admin samples a new queue (the form of the queues page)."""
        require_session(request)
        console = _console(request)
        form = await _form(request)
        if form is None:
            return await queues_page(request, status=413, errors=["the form is too long"])
        if not console.signer.check_csrf(request.cookies.get(COOKIE, ""), form.get("csrf", "")):
            return console.render(
                request, "problem.html", status=403, title="Form expired",
                message="This form does not belong to your session: open the queues again.",
            )  # fmt: skip
        arguments, problems = _queue_request(form)
        if problems:
            return await queues_page(request, status=422, errors=problems, form=form)
        try:
            created = await _off_loop(service.create_queue, console.settings, **arguments)
        except ReviewInputError as exc:
            return await queues_page(request, status=422, errors=_field_errors(exc), form=form)
        except ReviewConflictError as exc:
            return await queues_page(request, status=409, errors=[str(exc)], form=form)
        except NotFoundError as exc:  # no pairs yet
            return await queues_page(request, status=409, errors=[str(exc)], form=form)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/review?created={quote(created.queue_id, safe='')}", 303)

    async def item_page(
        request: Request, queue_id: str, *, status: int = 200, errors: list[str] | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        console = _console(request)
        reviewer = _reviewer_id(console, request)
        try:
            item = await _off_loop(
                service.next_item, console.settings, queue_id=queue_id, reviewer_id=reviewer
            )
        except NotFoundError as exc:
            return _problem(console, request, 404, "No such queue", exc)
        rubric = service.rubric(console.settings)
        cookie = request.cookies.get(COOKIE, "")
        return console.render(
            request, "review_item.html", status=status, active="review", queue_id=queue_id,
            item=item, rubric=rubric, verdicts=VERDICTS[item.kind if item else "pair"],
            errors=errors or [], form=form or {},
            csrf=console.signer.csrf_token(cookie), saved=request.query_params.get("saved"),
        )  # fmt: skip

    @router.get("/review/{queue_id}", response_class=HTMLResponse)
    async def item(request: Request, queue_id: str) -> Response:
        return await item_page(request, queue_id)

    @router.post("/review/{queue_id}")
    async def submit(request: Request, queue_id: str) -> Response:
        console = _console(request)
        reviewer = _reviewer_id(console, request)
        base = request.scope.get("root_path", "")
        form = await _form(request)
        if form is None:
            return await item_page(request, queue_id, status=413, errors=["the form is too long"])
        cookie = request.cookies.get(COOKIE, "")
        if not console.signer.check_csrf(cookie, form.get("csrf", "")):
            return console.render(
                request, "problem.html", status=403, title="Form expired",
                message="This form does not belong to your session: open the queue again.",
            )  # fmt: skip
        rubric = service.rubric(console.settings)
        try:
            review = _review_of(form, list(rubric.dimensions))
        except ValidationError as exc:
            return await item_page(
                request, queue_id, status=422, errors=_field_errors(exc), form=form
            )
        try:
            await _off_loop(
                service.submit_review, console.settings, queue_id=queue_id, review=review,
                reviewer_id=reviewer,
            )  # fmt: skip
        except ReviewInputError as exc:
            return await item_page(
                request, queue_id, status=422, errors=_field_errors(exc), form=form
            )
        except ReviewConflictError as exc:
            return await item_page(request, queue_id, status=409, errors=[str(exc)])
        except NotFoundError as exc:
            return _problem(console, request, 404, "Not found", exc)
        return RedirectResponse(f"{base}/review/{quote(queue_id, safe='')}?saved=1", 303)

    return router


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines, each with its kind for colour: add, del, hunk, head or same."""
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        lines.append((kind, line))
    return lines


def _calibration_router() -> APIRouter:
    router = APIRouter()

    @router.get("/calibration", response_class=HTMLResponse)
    async def calibration(request: Request) -> Response:
        """Every queue's reviews, or one queue's (``?queue=``)."""
        require_session(request)
        console = _console(request)
        queue_id = request.query_params.get("queue") or None

        def read() -> tuple[Any, Any, Any]:
            return (
                service.calibration(console.settings, queue_id=queue_id),
                service.suggest_policy(console.settings, queue_id=queue_id),
                service.list_queues(console.settings),
            )

        try:
            found, suggestion, every_queue = await _off_loop(read)
        except NotFoundError as exc:
            return _problem(console, request, 404, "No such queue", exc)
        chart = charts.error_bars(
            "Human precision per signal",
            [
                charts.Interval(s.name, s.precision, s.wilson_low, s.wilson_high, s.n)
                for s in found.signals
            ],
        )
        return console.render(
            request, "calibration.html", active="calibration", c=found, chart=chart,
            s=suggestion, diff=diff_lines(suggestion.diff), queues=every_queue,
        )  # fmt: skip

    return router
