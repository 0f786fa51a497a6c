"""Intake from GitHub webhooks: an issue labelled ``shipyard`` on a registered repository becomes
a ``task`` run with the issue's title and body as the task.

Every delivery must be signed: ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>`` with the
shared secret (``$SHIPYARD_WEBHOOK_SECRET``), compared in constant time; the secret is never logged
or shown. A delivery id (``X-GitHub-Delivery``) is acted on once; a replay is acknowledged and
ignored. Anything else signed correctly is acknowledged and ignored with the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from pydantic import BaseModel

from shipyard.app import App
from shipyard.errors import ShipyardError
from shipyard.executor import Executor
from shipyard.web.api.deps import executor, registry, shipyard
from shipyard.web.api.schemas import ERRORS
from shipyard.web.intake import AgentTaskRequest, start
from shipyard.web.registry import Registry
from shipyard.web.settings import ServeSettings

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"], responses=ERRORS)
LABEL = "shipyard"
WEBHOOK_SOURCE = "webhook"
MAX_BODY = 1_000_000


class WebhookOut(BaseModel):
    action: Literal["started", "ignored"]
    reason: str
    run_ids: list[str] = []


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=`` and the body's HMAC under ``secret`` (constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


@router.post(
    "/webhooks/github",
    summary="GitHub webhook (HMAC-signed): labelled issues become task runs",
    responses={401: {"description": "Missing or wrong signature."}},
)
async def github_webhook(
    request: Request,
    response: Response,
    app: Annotated[App, Depends(shipyard)],
    reg: Annotated[Registry, Depends(registry)],
    runner: Annotated[Executor, Depends(executor)],
    x_hub_signature_256: Annotated[str | None, Header(max_length=200)] = None,
    x_github_event: Annotated[str | None, Header(max_length=100)] = None,
    x_github_delivery: Annotated[str | None, Header(max_length=100)] = None,
) -> WebhookOut:
    settings: ServeSettings = request.app.state.settings
    if settings.webhook_secret is None:
        raise HTTPException(
            503, "webhooks are not configured: set SHIPYARD_WEBHOOK_SECRET on the server"
        )
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "the payload is larger than 1 MB")
    secret = settings.webhook_secret.get_secret_value().encode()
    if not signature_ok(secret, body, x_hub_signature_256):
        raise HTTPException(401, "the X-Hub-Signature-256 signature is missing or wrong")
    if not x_github_delivery or not x_github_event:
        raise HTTPException(400, "X-GitHub-Delivery and X-GitHub-Event headers are required")
    if not reg.first_delivery(x_github_delivery, event=x_github_event, outcome="received"):
        return WebhookOut(
            action="ignored", reason=f"delivery {x_github_delivery} was already received"
        )
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        reg.settle_delivery(x_github_delivery, "ignored: not JSON")
        raise HTTPException(400, "the payload is not JSON") from None
    outcome = _handle(
        x_github_event, payload if isinstance(payload, dict) else {}, app, reg, runner
    )
    reg.settle_delivery(x_github_delivery, f"{outcome.action}: {outcome.reason}"[:500])
    if outcome.action == "started":
        response.status_code = 202
    return outcome


def _handle(
    event: str, payload: dict[str, Any], app: App, reg: Registry, runner: Executor
) -> WebhookOut:
    if event != "issues":
        return WebhookOut(action="ignored", reason=f"{event} events are not acted on")
    if payload.get("action") != "labeled":
        return WebhookOut(action="ignored", reason=f"issue {payload.get('action')!s}, not labeled")
    label = _dict(payload.get("label")).get("name")
    if label != LABEL:
        return WebhookOut(action="ignored", reason=f"label {label!s} is not {LABEL}")
    full_name = str(_dict(payload.get("repository")).get("full_name", ""))
    repo = reg.repo_for_github(full_name) if full_name else None
    if repo is None:
        return WebhookOut(action="ignored", reason=f"repository {full_name!r} is not registered")
    issue = _dict(payload.get("issue"))
    title = str(issue.get("title") or "").strip()
    text = "\n\n".join(part for part in (title, str(issue.get("body") or "").strip()) if part)
    if not text:
        return WebhookOut(action="ignored", reason="the issue has no title or body")
    sender = str(_dict(payload.get("sender")).get("login") or "unknown")
    number = issue.get("number")
    request = AgentTaskRequest(
        blueprint="task",
        repo=repo.name,
        task=text[:20_000],
        title=(f"#{number} {title}" if number else title)[:200],
    )
    try:
        run_ids = start(
            request, repo, app, runner, requested_by=f"github:{sender}", source=WEBHOOK_SOURCE
        )
    except ShipyardError as exc:
        log.warning("webhook for %s could not start a run: %s", full_name, exc)
        return WebhookOut(action="ignored", reason=f"could not start a run: {exc}")
    return WebhookOut(action="started", reason=f"issue {number} labelled {LABEL}", run_ids=run_ids)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
