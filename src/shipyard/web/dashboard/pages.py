"""The dashboard's pages: login, runs (live), a run, the review queue and the metrics.

Every page needs a logged-in identity (a session cookie, or a bearer token); anonymous visitors are
sent to the login page. Forms that change something carry the session's CSRF token, and approving
or rejecting needs the reviewer role. The pages call the same application layer as the API.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from shipyard.app import App
from shipyard.config import load_config
from shipyard.errors import NotFound, ReviewError, ShipyardError
from shipyard.events import RunState
from shipyard.insights import insights
from shipyard.model import RunStatus
from shipyard.redaction import redact_text
from shipyard.web.auth import (
    SESSION_COOKIE,
    Identity,
    Role,
    TokenStore,
    check_login_csrf,
    csrf_token,
    current_identity,
    end_login,
    end_session,
    keep_login_nonce,
    login_csrf,
    login_nonce,
    start_session,
    verify_csrf,
)
from shipyard.web.dashboard.charts import chart_data
from shipyard.web.dashboard.diffview import read_diff, stylesheet
from shipyard.web.dashboard.runview import read_transcript, run_view
from shipyard.web.dashboard.templating import STATIC, templates
from shipyard.web.queries import every_run

router = APIRouter(include_in_schema=False)

POLL_SECONDS = 5
"""Live parts of a page are redrawn on each server-sent event, and at least this often."""
LIST_LIMIT = 200


# --- identity ------------------------------------------------------------------------------------


async def page_identity(request: Request) -> Identity:
    """The logged-in caller; anonymous visitors are redirected to the login page."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
        if scheme.lower() == "bearer" and credentials.strip()
        else None
    )
    try:
        return await current_identity(
            request, bearer=bearer, cookie=request.cookies.get(SESSION_COOKIE)
        )
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            303, "log in first", headers={"Location": f"/login?next={quote(target, safe='')}"}
        ) from None


Viewer = Annotated[Identity, Depends(page_identity)]


def _shipyard(request: Request) -> App:
    app: App = request.app.state.shipyard
    return app


def _page(
    request: Request,
    name: str,
    identity: Identity | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {
            "identity": identity,
            "csrf": csrf_token(request),
            "poll_seconds": POLL_SECONDS,
            "can_review": identity is not None and identity.role >= Role.REVIEWER,
            "notice": "",
            "error": "",
            **context,
        },
        status_code=status_code,
    )


page_response = _page
"""A dashboard page rendered with what every page gets (identity, CSRF token, notices)."""


# --- static files --------------------------------------------------------------------------------


@router.get("/static/dashboard/{path:path}")
def static(path: str) -> Response:
    """The vendored scripts, the stylesheet and the highlighting styles (no build step)."""
    if path == "highlight.css":
        return Response(stylesheet(), media_type="text/css")
    root = STATIC.resolve()
    file = (root / path).resolve()
    if not file.is_file() or not file.is_relative_to(root):
        raise HTTPException(404, f"no static file {path}")
    return FileResponse(file, headers={"Cache-Control": "public, max-age=3600"})


# --- login ---------------------------------------------------------------------------------------


def _safe_next(target: str) -> str:
    # Only a path on this server: never another host (an open redirect).
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/runs"


def _login_page(
    request: Request, next: str, *, status_code: int = 200, error: str = ""
) -> Response:
    # The form's token is signed by the server and bound to a cookie of this browser: a login
    # post from another site carries neither, and is refused.
    nonce = login_nonce(request)
    page = _page(
        request,
        "login.html",
        None,
        status_code=status_code,
        next=_safe_next(next),
        error=error,
        login_csrf=login_csrf(request, nonce),
    )
    keep_login_nonce(request, page, nonce)
    return page


@router.get("/login")
def login_form(request: Request, next: str = "/runs") -> Response:
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/runs",
    form_token: Annotated[str, Form(alias="csrf_token")] = "",
) -> Response:
    try:
        check_login_csrf(request, form_token)
    except HTTPException as exc:  # shown on a fresh login form, whose token will be accepted
        return _login_page(request, next, status_code=exc.status_code, error=str(exc.detail))
    tokens: TokenStore = request.app.state.tokens
    identity = tokens.authenticate(token.strip())
    if identity is None:
        return _login_page(
            request,
            next,
            status_code=401,
            error="That token is unknown or revoked. Create one with `shipyard token create`.",
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    start_session(response, identity, request)
    end_login(response)
    return response


@router.post("/logout", dependencies=[Depends(verify_csrf)])
def logout(_identity: Viewer) -> Response:
    response = RedirectResponse("/login", status_code=303)
    end_session(response)
    return response


# --- runs ----------------------------------------------------------------------------------------


@router.get("/")
def home(_identity: Viewer) -> Response:
    return RedirectResponse("/runs", status_code=303)


def _filters(
    status: str = "", blueprint: str = "", repo: str = "", decision: str = ""
) -> dict[str, str]:
    return {"status": status, "blueprint": blueprint, "repo": repo, "decision": decision}


Filters = Annotated[dict[str, str], Depends(_filters)]


def _matching(app: App, filters: dict[str, str]) -> tuple[list[RunState], list[RunState]]:
    """The runs the filters select, and the runs the filter choices are drawn from."""
    status = None
    if filters["status"]:
        try:
            status = RunStatus(filters["status"])
        except ValueError:
            status = None
    recent = app.store.list_runs(limit=LIST_LIMIT)
    runs = recent if status is None else app.store.list_runs(limit=LIST_LIMIT, status=status)
    runs = [
        r
        for r in runs
        if (not filters["blueprint"] or r.task.get("blueprint") == filters["blueprint"])
        and (not filters["repo"] or r.task.get("repo") == filters["repo"])
        and (not filters["decision"] or (r.action or "none") == filters["decision"])
    ]
    return runs, recent


def _active(runs: list[RunState]) -> bool:
    return any(not r.finished for r in runs)


@router.get("/runs")
def runs_page(
    request: Request, identity: Viewer, filters: Filters, notice: str = ""
) -> HTMLResponse:
    runs, recent = _matching(_shipyard(request), filters)
    return _page(
        request,
        "runs.html",
        identity,
        notice=notice[:200],
        runs=runs,
        filters=filters,
        query=urlencode({k: v for k, v in filters.items() if v}),
        statuses=[s.value for s in RunStatus],
        blueprints=sorted({str(r.task.get("blueprint", "")) for r in recent} - {""}),
        repos=sorted({str(r.task.get("repo", "")) for r in recent} - {""}),
        decisions=["MERGE", "STAGING_ONLY", "REVIEW", "HALT", "none"],
    )


@router.get("/runs/rows")
def runs_rows(request: Request, identity: Viewer, filters: Filters) -> HTMLResponse:
    """The runs table's body, asked for again every few seconds: statuses change without a reload."""
    runs, _ = _matching(_shipyard(request), filters)
    return _page(request, "_run_rows.html", identity, runs=runs)


def _run_context(request: Request, identity: Identity, run_id: str) -> dict[str, Any]:
    app = _shipyard(request)
    state = app.run(run_id)
    events = app.store.events(state.run_id)
    view = run_view(events)
    repo = Path(str(state.task.get("repo", ".")))
    diff = read_diff(repo, state.base_commit, state.change_commit)
    transcript = read_transcript(Path(view.transcript_path)) if view.transcript_path else []
    return {
        "run": view,
        "state": view.state,
        "diff": diff,
        "transcript": transcript,
        "self_review": _self_review(identity, view.state),
        "approving": request.app.state.approvals.approving(state.run_id),
    }


def _self_review(identity: Identity, state: RunState) -> str:
    """Why this identity may not approve this run ('' when it may)."""
    requested_by = str(state.task.get("requested_by") or "")
    if not requested_by or requested_by.casefold() != identity.name.casefold():
        return ""
    try:
        loaded = load_config(Path(str(state.task.get("repo", "."))))
    except ShipyardError:
        loaded = None
    if loaded is not None and loaded.config.review.allow_self_approval:
        return ""
    return (
        f"You ({identity.name}) requested this run, so you cannot also approve it: "
        "another reviewer must."
    )


@router.get("/runs/{run_id}")
def run_page(request: Request, identity: Viewer, run_id: str, notice: str = "") -> HTMLResponse:
    try:
        context = _run_context(request, identity, run_id)
    except NotFound as exc:
        return _page(request, "error.html", identity, status_code=404, error=str(exc))
    return _page(request, "run.html", identity, notice=notice[:200], **context)


@router.get("/runs/{run_id}/live")
def run_live(request: Request, identity: Viewer, run_id: str) -> HTMLResponse:
    """The run page's body, asked for again while the run is under way."""
    try:
        context = _run_context(request, identity, run_id)
    except NotFound as exc:
        return _page(request, "error.html", identity, status_code=404, error=str(exc))
    return _page(request, "_run_body.html", identity, **context)


# --- reviews -------------------------------------------------------------------------------------


@router.get("/reviews")
def reviews_page(request: Request, identity: Viewer) -> HTMLResponse:
    waiting = _shipyard(request).reviews()
    return _page(
        request,
        "reviews.html",
        identity,
        runs=waiting,
        self_review={r.run_id: _self_review(identity, r) for r in waiting},
    )


def _reviewer(identity: Viewer) -> Identity:
    if identity.role < Role.REVIEWER:
        raise HTTPException(
            403, f"approving and rejecting needs the reviewer role; {identity.name} is a viewer"
        )
    return identity


Reviewer = Annotated[Identity, Depends(_reviewer)]


@router.post("/runs/{run_id}/approve", dependencies=[Depends(verify_csrf)])
def approve(
    request: Request, identity: Reviewer, run_id: str, comment: Annotated[str, Form()] = ""
) -> Response:
    return _decide(request, identity, run_id, comment, approve=True)


@router.post("/runs/{run_id}/reject", dependencies=[Depends(verify_csrf)])
def reject(
    request: Request, identity: Reviewer, run_id: str, comment: Annotated[str, Form()] = ""
) -> Response:
    return _decide(request, identity, run_id, comment, approve=False)


def _decide(
    request: Request, identity: Identity, run_id: str, comment: str, *, approve: bool
) -> Response:
    app = _shipyard(request)
    comment = comment.strip()[:2000]
    try:
        if approve:
            # The merge continues in the background; the run's page follows it live.
            started = request.app.state.approvals.start(run_id, by=identity.name, comment=comment)
            notice = (
                f"approved by {identity.name}: merging through the merge queue"
                if started.started
                else "an approval of this run is already under way"
            )
            return _to_run(started.state.run_id, notice)
        state = app.reject(run_id, by=identity.name, comment=comment)
    except ShipyardError as exc:
        status = 404 if isinstance(exc, NotFound) else 403 if isinstance(exc, ReviewError) else 409
        try:
            context = _run_context(request, identity, run_id)
        except NotFound:
            return _page(request, "error.html", identity, status_code=404, error=str(exc))
        return _page(
            request,
            "run.html",
            identity,
            status_code=status,
            error=redact_text(str(exc)),
            **context,
        )
    notice = f"rejected by {identity.name}: the run is {state.status.value.replace('_', ' ')}"
    return _to_run(state.run_id, notice)


def _to_run(run_id: str, notice: str) -> Response:
    return RedirectResponse(
        f"/runs/{quote(run_id)}?{urlencode({'notice': notice})}", status_code=303
    )


# --- metrics -------------------------------------------------------------------------------------


@router.get("/insights")
def metrics_page(
    request: Request, identity: Viewer, weeks: Annotated[int, Query(ge=1, le=520)] = 12
) -> HTMLResponse:
    """The seeds' table for this installation, with charts over time."""
    since = datetime.now(UTC) - timedelta(weeks=weeks)
    runs = every_run(_shipyard(request).store)
    result = insights(events for events in runs if events[0].at >= since)
    return _page(
        request,
        "metrics.html",
        identity,
        result=result,
        weeks=weeks,
        charts=chart_data(result),
    )


__all__ = ["Viewer", "page_identity", "page_response", "router"]
