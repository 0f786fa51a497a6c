"""Turning a request into runs: the task request body, validated, made into tasks, then submitted.

Used by ``POST /api/tasks``, the scheduler and the webhook, so all three start runs alike. A
request names a registered repository; its path and package index come from the registration.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipyard.app import App, agent_task, deps_tasks, submit_task
from shipyard.executor import Executor
from shipyard.model import ChangeType, Task
from shipyard.sandbox import ensure_available
from shipyard.web.registry import RepoRecord

MAX_TEXT = 1_000_000  # a patch or a log of up to ~1 MB
Title = Annotated[str, Field(default="", max_length=200, description="One line for the change.")]
RepoName = Annotated[
    str, Field(min_length=1, max_length=64, description="A registered repository's name.")
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitRequest(_Request):
    """Verify and deliver a patch produced elsewhere."""

    blueprint: Literal["submit"]
    repo: RepoName
    patch: str = Field(min_length=1, max_length=MAX_TEXT, description="A unified diff.")
    change_type: ChangeType
    title: Title = ""
    allow_removed_tests: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=100
    )


class AgentTaskRequest(_Request):
    """An agent implements a task described in words."""

    blueprint: Literal["task"]
    repo: RepoName
    task: str = Field(min_length=1, max_length=20_000, description="What to implement or fix.")
    change_type: ChangeType = ChangeType.FEATURE
    title: Title = ""


class FixTestsRequest(_Request):
    """An agent makes the base's failing tests pass."""

    blueprint: Literal["fix-tests"]
    repo: RepoName
    tests: list[Annotated[str, Field(max_length=500)]] = Field(default_factory=list, max_length=100)


class LintFixRequest(_Request):
    """ruff's automatic fixes, then an agent for the rest."""

    blueprint: Literal["lint-fix"]
    repo: RepoName


class CiFixRequest(_Request):
    """An agent fixes a failing CI check from its log."""

    blueprint: Literal["ci-fix"]
    repo: RepoName
    log: str = Field(min_length=1, max_length=MAX_TEXT, description="The failing check's log.")


class DepsRequest(_Request):
    """One run per outdated pin of the repository."""

    blueprint: Literal["deps"]
    repo: RepoName


TaskRequest = Annotated[
    SubmitRequest
    | AgentTaskRequest
    | FixTestsRequest
    | LintFixRequest
    | CiFixRequest
    | DepsRequest,
    Field(discriminator="blueprint"),
]
BLUEPRINTS = ("submit", "task", "fix-tests", "lint-fix", "ci-fix", "deps")


def _upload(app: App, kind: str, text: str) -> Path:
    """Keep a request's text (a patch, a log) under the home, named by its content."""
    folder = app.home / "uploads"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.{kind}"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path


def tasks_for(
    request: TaskRequest, repo: RepoRecord, app: App, *, requested_by: str, source: str
) -> list[Task]:
    """The tasks a request stands for (deps: one per planned run; possibly none)."""
    where = Path(repo.path)

    def agent(blueprint: str, title: str, params: dict[str, object], kind: ChangeType) -> Task:
        return agent_task(
            blueprint,
            repo=where,
            title=title,
            params=params,
            change_type=kind,
            index_url=repo.index_url,
            requested_by=requested_by,
            source=source,
        )

    match request:
        case SubmitRequest():
            return [
                submit_task(
                    repo=where,
                    patch=_upload(app, "patch", request.patch),
                    change_type=request.change_type,
                    title=request.title,
                    allow_removed_tests=request.allow_removed_tests,
                    index_url=repo.index_url,
                    requested_by=requested_by,
                    source=source,
                )
            ]
        case AgentTaskRequest():
            title = request.title or request.task.splitlines()[0][:72]
            return [agent("task", title, {"task": request.task}, request.change_type)]
        case FixTestsRequest():
            params: dict[str, object] = {"tests": request.tests}
            return [agent("fix-tests", "Fix failing tests", params, ChangeType.BUGFIX)]
        case LintFixRequest():
            return [agent("lint-fix", "Fix lint findings", {}, ChangeType.FORMATTING)]
        case CiFixRequest():
            params = {"log": str(_upload(app, "log", request.log))}
            return [agent("ci-fix", "Fix the failing check", params, ChangeType.BUGFIX)]
        case DepsRequest():
            plan = app.plan_deps(repo=where, index_url=repo.index_url)
            return deps_tasks(
                plan, index_url=repo.index_url, requested_by=requested_by, source=source
            )
    raise AssertionError(f"unhandled task request {request!r}")  # pragma: no cover


def start(
    request: TaskRequest,
    repo: RepoRecord,
    app: App,
    executor: Executor,
    *,
    requested_by: str,
    source: str,
) -> list[str]:
    """Validate ``request``, then submit its runs to ``executor``; their ids, at once."""
    tasks = tasks_for(request, repo, app, requested_by=requested_by, source=source)
    if tasks:
        ensure_available()
    return [executor.submit(task) for task in tasks]
