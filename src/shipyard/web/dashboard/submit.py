"""Starting a run from the dashboard: a form for reviewers that POST /api/tasks would accept.

The form's fields become the same task request the API validates (``shipyard.web.intake``), for a
registered repository only, and the runs start the same way, in the background; the browser is
sent to the new run's page, which follows it live.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from shipyard.errors import ShipyardError, format_validation_error
from shipyard.model import ChangeType
from shipyard.redaction import redact_text
from shipyard.web.auth import Identity, Role, verify_csrf
from shipyard.web.dashboard.pages import Viewer, page_response
from shipyard.web.intake import TaskRequest, start
from shipyard.web.registry import Registry

router = APIRouter(include_in_schema=False)

DASHBOARD_SOURCE = "dashboard"
BLUEPRINTS = {
    "task": "task: an agent implements what you describe",
    "deps": "deps: update outdated dependencies, one run per update",
    "lint-fix": "lint-fix: ruff's fixes, then an agent for the rest",
    "submit": "submit: verify a patch produced elsewhere",
}
_REQUEST: TypeAdapter[Any] = TypeAdapter(TaskRequest)


def _submitter(identity: Viewer) -> Identity:
    if identity.role < Role.REVIEWER:
        raise HTTPException(
            403, f"starting runs needs the reviewer role; {identity.name} is a viewer"
        )
    return identity


Submitter = Annotated[Identity, Depends(_submitter)]


def task_body(
    *, blueprint: str, repo: str, title: str, task: str, patch: str, change_type: str
) -> dict[str, Any]:
    """The task request the form's fields stand for: only the fields its blueprint takes."""
    body: dict[str, Any] = {"blueprint": blueprint, "repo": repo}
    if blueprint == "task":
        body.update(task=task, title=title)
        if change_type:
            body["change_type"] = change_type
    elif blueprint == "submit":
        # Browsers send a textarea's lines ending in CRLF (HTML forms normalise them so); the
        # diff was LF when it was pasted, and would not apply otherwise.
        body.update(patch=patch.replace("\r\n", "\n"), title=title, change_type=change_type)
    return body


def _form(request: Request, identity: Identity, status_code: int = 200, **values: Any) -> Response:
    registry: Registry = request.app.state.registry
    fields = {"blueprint": "task", "repo": "", "title": "", "task": "", "patch": "",
              "change_type": "", **values}  # fmt: skip
    return page_response(
        request,
        "new_run.html",
        identity,
        status_code=status_code,
        repos=[r.name for r in registry.repos()],
        blueprints=BLUEPRINTS,
        change_types=[t.value for t in ChangeType],
        form=fields,
        error=values.get("error", ""),
    )


@router.get("/runs/new")
def new_run_form(request: Request, identity: Submitter) -> Response:
    return _form(request, identity)


@router.post("/runs/new", dependencies=[Depends(verify_csrf)])
def new_run(
    request: Request,
    identity: Submitter,
    blueprint: Annotated[str, Form()] = "",
    repo: Annotated[str, Form()] = "",
    title: Annotated[str, Form()] = "",
    task: Annotated[str, Form()] = "",
    patch: Annotated[str, Form()] = "",
    change_type: Annotated[str, Form()] = "",
) -> Response:
    values = {"blueprint": blueprint, "repo": repo, "title": title, "task": task,
              "patch": patch, "change_type": change_type}  # fmt: skip
    try:
        if blueprint not in BLUEPRINTS:
            raise ShipyardError(f"choose one of: {', '.join(BLUEPRINTS)}")
        # The same validation and the same start as POST /api/tasks.
        body = _REQUEST.validate_python(task_body(**values))
        registry: Registry = request.app.state.registry
        run_ids = start(
            body,
            registry.repo(body.repo),
            request.app.state.shipyard,
            request.app.state.executor,
            requested_by=identity.name,
            source=DASHBOARD_SOURCE,
        )
    except ValidationError as exc:
        error = format_validation_error(exc, "the form")
        return _form(request, identity, status_code=422, **values, error=error)
    except ShipyardError as exc:
        return _form(request, identity, status_code=422, **values, error=redact_text(str(exc)))
    if len(run_ids) == 1:
        notice = f"run started by {identity.name}"
        return RedirectResponse(
            f"/runs/{quote(run_ids[0])}?{urlencode({'notice': notice})}", status_code=303
        )
    notice = f"{len(run_ids)} runs started" if run_ids else "nothing to do: everything is current"
    return RedirectResponse(f"/runs?{urlencode({'notice': notice})}", status_code=303)


__all__ = ["DASHBOARD_SOURCE", "router", "task_body"]
