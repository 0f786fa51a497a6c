"""What the API's handlers take from the application's state."""

from __future__ import annotations

from fastapi import Request

from shipyard.app import App
from shipyard.executor import Executor
from shipyard.web.approvals import Approvals
from shipyard.web.registry import Registry
from shipyard.web.scheduler import Scheduler


def shipyard(request: Request) -> App:
    app: App = request.app.state.shipyard
    return app


def registry(request: Request) -> Registry:
    found: Registry = request.app.state.registry
    return found


def executor(request: Request) -> Executor:
    found: Executor = request.app.state.executor
    return found


def scheduler(request: Request) -> Scheduler:
    found: Scheduler = request.app.state.scheduler
    return found


def approvals(request: Request) -> Approvals:
    found: Approvals = request.app.state.approvals
    return found
