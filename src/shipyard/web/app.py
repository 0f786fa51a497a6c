"""The FastAPI application: the API under ``/api``, the dashboard, ``/metrics`` and ``/healthz``.

``create_app(settings)`` builds it; ``app.state`` holds what handlers share:

- ``app.state.shipyard``: the ``shipyard.app.App`` (home, store; reviews, approve, reject, runs…);
- ``app.state.executor``: the ``shipyard.executor.Executor`` that ``submit``s runs in the background;
- ``app.state.approvals``: the ``Approvals`` under way, merged in the background;
- ``app.state.tokens``: the ``TokenStore``; ``app.state.registry``: repositories and schedules;
- ``app.state.settings``: the ``ServeSettings``; ``app.state.session_secret``: signs sessions.

Errors leave as one JSON shape, ``{"error": {"code": "...", "message": "..."}}``, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shipyard import __version__
from shipyard.app import App
from shipyard.errors import (
    BlueprintError,
    ConfigError,
    NotFound,
    PatchError,
    RepositoryError,
    ReviewError,
    ShipyardError,
)
from shipyard.executor import executor_from_settings
from shipyard.redaction import redact_text
from shipyard.web.auth import TokenStore, remember_request, server_secret
from shipyard.web.settings import ServeSettings

log = logging.getLogger(__name__)

TAGS = [
    {"name": "tasks", "description": "Start runs: a blueprint on a registered repository."},
    {"name": "runs", "description": "Runs, their events, gate results, diff and transcript."},
    {"name": "reviews", "description": "Changes waiting for a person: approve or reject."},
    {"name": "repos", "description": "Repositories the server may change (admin)."},
    {"name": "schedules", "description": "Runs started by cron expressions (admin)."},
    {"name": "metrics", "description": "Whether automation pays off."},
    {"name": "stream", "description": "Live run updates as server-sent events."},
    {"name": "webhooks", "description": "Intake from forges (HMAC-signed)."},
    {"name": "service", "description": "Health and Prometheus metrics."},
]


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The server for ``settings`` (default: from the environment)."""
    settings = settings or ServeSettings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = app.state.scheduler
        if settings.scheduler:
            scheduler.start()
        try:
            yield
        finally:
            scheduler.stop()
            app.state.approvals.shutdown(wait=True)
            shutdown = getattr(app.state.executor, "shutdown", None)
            if shutdown is not None:
                shutdown(wait=True)
            app.state.shipyard.close()

    app = FastAPI(
        title="shipyard",
        version=__version__,
        description=(
            "Runs coding agents unattended: sandboxed changes, verified by gates, delivered by "
            "policy. Authenticate with `Authorization: Bearer <token>` "
            "(`shipyard token create --name N --role viewer|reviewer|admin`)."
        ),
        openapi_tags=TAGS,
        lifespan=lifespan,
    )
    _state(app, settings)
    _errors(app)

    @app.middleware("http")
    async def request_context(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        remember_request(request)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    _routes(app)
    return app


def _state(app: FastAPI, settings: ServeSettings) -> None:
    from shipyard.web.approvals import Approvals
    from shipyard.web.registry import Registry
    from shipyard.web.scheduler import Scheduler

    shipyard = App(settings.home)
    app.state.settings = settings
    app.state.shipyard = shipyard
    app.state.tokens = TokenStore(shipyard.store)
    app.state.registry = Registry(shipyard.store)
    app.state.session_secret = server_secret(shipyard.home)
    app.state.executor = executor_from_settings(store=shipyard.store, home=shipyard.home)
    app.state.approvals = Approvals(shipyard)
    app.state.scheduler = Scheduler(app.state.registry, app.state.executor, shipyard, settings)


def _routes(app: FastAPI) -> None:
    from shipyard.web import api, metrics, stream, webhooks

    metrics.install(app)
    app.include_router(api.router, prefix="/api")
    app.include_router(stream.router, prefix="/api")
    app.include_router(webhooks.router, prefix="/api")
    try:
        from shipyard.web.dashboard import router as dashboard
    except ImportError:  # pragma: no cover - the dashboard is optional while it is being built
        log.warning("the dashboard is not importable; serving the API only", exc_info=True)
    else:
        app.include_router(dashboard)

    @app.get("/healthz", tags=["service"], summary="Liveness: the server answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}


# --- errors ------------------------------------------------------------------------------------

_STATUS: list[tuple[type[ShipyardError], int, str]] = [
    (NotFound, 404, "not_found"),
    (ReviewError, 403, "review_refused"),
    (PatchError, 422, "bad_patch"),
    (ConfigError, 422, "invalid"),
    (BlueprintError, 422, "invalid"),
    (RepositoryError, 422, "invalid_repository"),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
}


def error_response(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """The one error shape every endpoint answers with."""
    body: dict[str, Any] = {"code": code, "message": redact_text(message), **extra}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ShipyardError)
    async def shipyard_error(_request: Request, exc: ShipyardError) -> JSONResponse:
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                return error_response(status, code, str(exc))
        return error_response(409, "failed", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(
            exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {})
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Without the offending input: it may be a secret sent in the wrong field.
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg"))}
            for e in exc.errors()
        ]
        shown = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return error_response(422, "invalid", f"invalid request: {shown}", problems=problems)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal", "internal error; the server log has the details")


__all__ = ["create_app", "error_response"]
