"""Starting runs: a blueprint on a registered repository, executed in the background."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from shipyard.app import App
from shipyard.executor import Executor
from shipyard.web.api.deps import executor, registry, shipyard
from shipyard.web.api.schemas import TaskAccepted
from shipyard.web.auth import Identity, Role, require
from shipyard.web.intake import TaskRequest, start
from shipyard.web.registry import Registry

router = APIRouter(tags=["tasks"])
API_SOURCE = "api"

EXAMPLES = {
    "submit": {
        "summary": "Verify a patch",
        "value": {
            "blueprint": "submit",
            "repo": "shop",
            "change_type": "feature",
            "title": "Add a low-stock report",
            "patch": "--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n # shop\n+More.\n",
        },
    },
    "deps": {"summary": "Update dependencies", "value": {"blueprint": "deps", "repo": "shop"}},
    "task": {
        "summary": "An agent implements a task",
        "value": {"blueprint": "task", "repo": "shop", "task": "Add a low-stock report."},
    },
}


@router.post(
    "/tasks",
    status_code=202,
    summary="Start runs for a task (reviewer)",
    description=(
        "Validates the request, records the runs and returns their ids at once; they execute in "
        "the background (watch them with GET /api/runs/{id}/stream). The repository must be "
        "registered; its path and package index come from the registration."
    ),
)
def create_task(
    request: Annotated[TaskRequest, Body(openapi_examples=EXAMPLES)],
    identity: Annotated[Identity, Depends(require(Role.REVIEWER))],
    app: Annotated[App, Depends(shipyard)],
    reg: Annotated[Registry, Depends(registry)],
    runner: Annotated[Executor, Depends(executor)],
) -> TaskAccepted:
    repo = reg.repo(request.repo)
    run_ids = start(request, repo, app, runner, requested_by=identity.name, source=API_SOURCE)
    message = "" if run_ids else "nothing to do: every pinned requirement is up to date"
    return TaskAccepted(run_ids=run_ids, message=message)
