"""The API's response bodies: typed, documented, and redacted when made (DESIGN invariant 3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shipyard.events import Event, RunState
from shipyard.model import RunStatus
from shipyard.redaction import redact
from shipyard.web.intake import TaskRequest
from shipyard.web.registry import RepoRecord, ScheduleRecord


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunSummary(_Out):
    """A run as lists show it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "20260301-101500-a1b2c3",
                    "status": "awaiting_review",
                    "title": "Add a low-stock report",
                    "blueprint": "submit",
                    "repo": "/srv/repos/shop",
                    "source": "api",
                    "requested_by": "ci-bot",
                    "created_at": "2026-03-01T10:15:00Z",
                    "updated_at": "2026-03-01T10:15:09Z",
                    "node": "deliver",
                    "action": "REVIEW",
                    "branch": "shipyard/20260301-101500-a1b2c3",
                }
            ]
        }
    )

    run_id: str
    status: RunStatus
    title: str
    blueprint: str
    repo: str
    source: str
    requested_by: str
    created_at: datetime | None
    updated_at: datetime | None
    node: str | None = Field(description="The node started last.")
    action: str | None = Field(
        description="The policy's decision: MERGE, STAGING_ONLY, REVIEW, HALT."
    )
    branch: str | None

    @classmethod
    def of(cls, state: RunState) -> RunSummary:
        task = state.task
        return cls(
            run_id=state.run_id,
            status=state.status,
            title=redact(str(task.get("title", ""))),
            blueprint=str(task.get("blueprint", "")),
            repo=str(task.get("repo", "")),
            source=str(task.get("source", "")),
            requested_by=str(task.get("requested_by", "")),
            created_at=state.created_at,
            updated_at=state.updated_at,
            node=state.node,
            action=state.action,
            branch=state.branch,
        )


class RunList(_Out):
    runs: list[RunSummary]
    next_cursor: str | None = Field(
        description="Pass as `before` to get the next page; null on the last page."
    )


class RunDetail(RunSummary):
    """A run with everything its events say: task, decision and reasons, delivery, review."""

    params: dict[str, Any]
    base_commit: str | None
    change_commit: str | None
    decision: dict[str, Any] | None = Field(
        description="{action, reasons: [{rule, action, message}]}"
    )
    delivered_target: str | None
    delivered_commit: str | None
    review_status: str | None
    review_target: str | None
    reviewed_by: str | None
    review_comment: str | None
    error: str | None
    reason: str | None
    rollout: dict[str, Any] | None
    reproducibility: dict[str, Any] = Field(
        description="Base commit, blueprint version, config hash, tools: enough to rerun it."
    )
    agent_spend: dict[str, Any] | None
    last_seq: int

    @classmethod
    def detail(cls, state: RunState, events: list[Event]) -> RunDetail:
        record: dict[str, Any] = {"base_commit": state.base_commit}
        spend = None
        for event in events:
            if isinstance(event.data.get("reproducibility"), dict):
                record.update(event.data["reproducibility"])
            if event.data.get("spend"):
                spend = event.data["spend"]
        return cls(
            **RunSummary.of(state).model_dump(),
            params=redact(dict(state.task.get("params", {}))),
            base_commit=state.base_commit,
            change_commit=state.change_commit,
            decision=redact(state.decision),
            delivered_target=state.delivered_target,
            delivered_commit=state.delivered_commit,
            review_status=state.review_status,
            review_target=state.review_target,
            reviewed_by=state.reviewed_by,
            review_comment=redact(state.review_comment),
            error=redact(state.error),
            reason=redact(state.reason),
            rollout=redact(state.rollout),
            reproducibility=redact(record),
            agent_spend=redact(spend),
            last_seq=state.last_seq,
        )


class EventOut(_Out):
    """One recorded fact about a run."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "seq": 26,
                    "type": "decision.made",
                    "at": "2026-03-01T10:15:08Z",
                    "data": {"action": "REVIEW", "reasons": []},
                }
            ]
        }
    )

    seq: int
    type: str
    at: datetime
    data: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(seq=event.seq, type=event.type, at=event.at, data=redact(event.data))


class EventList(_Out):
    run_id: str
    events: list[EventOut]


class GateOut(_Out):
    gate: str
    phase: str = Field(description="baseline, change or verdict")
    passed: bool
    status: str
    summary: str
    seconds: float | None
    details: list[Any]
    facts: dict[str, Any]


class GateList(_Out):
    run_id: str
    gates: list[GateOut]


class DiffOut(_Out):
    run_id: str
    base: str
    commit: str
    diff: str = Field(description="The unified diff of the change, secrets masked.")


class TranscriptOut(_Out):
    run_id: str
    messages: list[dict[str, Any]] = Field(
        description="The agent's transcript records in order (messages and compaction markers)."
    )


class ReviewDecision(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"comment": "Looks right."}]}
    )

    comment: str = Field(default="", max_length=5000, description="Why; kept in the record.")


class ApprovalAccepted(_Out):
    """An approval that continues in the background: follow the run until it is merged."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "run_id": "20260301-101500-a1b2c3",
                    "started": True,
                    "message": "approved by bob; merging through the merge queue",
                }
            ]
        }
    )

    run_id: str
    started: bool = Field(description="False when an approval of this run was already under way.")
    message: str


class TaskAccepted(_Out):
    """The runs a task request started; they execute in the background."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"run_ids": ["20260301-101500-a1b2c3"], "message": ""}]}
    )

    run_ids: list[str]
    message: str


class RepoIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "shop", "path": "/srv/repos/shop", "github": "acme/shop"}]
        },
    )

    name: str = Field(min_length=1, max_length=64, description="How requests name it.")
    path: str = Field(min_length=1, max_length=4096, description="A git repository on this host.")
    github: str | None = Field(
        default=None, max_length=201, description="owner/name, for webhooks."
    )
    index_url: str | None = Field(
        default=None, max_length=2000, description="Package index its runs install from."
    )


class RepoPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    github: str | None = Field(default=None, max_length=201)
    index_url: str | None = Field(default=None, max_length=2000)


class RepoOut(_Out):
    name: str
    path: str
    github: str | None
    index_url: str | None
    created_at: datetime
    created_by: str

    @classmethod
    def of(cls, record: RepoRecord) -> RepoOut:
        return cls(**{**record.__dict__, "index_url": redact(record.index_url)})


class ScheduleIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"cron": "0 6 * * 1", "task": {"blueprint": "deps", "repo": "shop"}}]
        },
    )

    cron: str = Field(min_length=1, max_length=200, description="Five-field cron, in UTC.")
    task: TaskRequest = Field(description="A task request, as POST /api/tasks takes it.")


class SchedulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, min_length=1, max_length=200)
    enabled: bool | None = None


class ScheduleOut(_Out):
    id: str
    repo: str
    blueprint: str
    cron: str
    task: dict[str, Any]
    enabled: bool
    created_at: datetime
    created_by: str
    next_run_at: datetime | None = Field(description="When it is next due (null while disabled).")
    last_runs: list[dict[str, Any]] = Field(
        description="Its latest due times and the runs started."
    )

    @classmethod
    def of(
        cls, record: ScheduleRecord, next_run: datetime | None, claims: list[dict[str, Any]]
    ) -> ScheduleOut:
        return cls(
            id=record.id,
            repo=record.repo,
            blueprint=record.blueprint,
            cron=record.cron,
            task=redact(record.request),
            enabled=record.enabled,
            created_at=record.created_at,
            created_by=record.created_by,
            next_run_at=next_run,
            last_runs=redact(claims),
        )


class MetricsSummary(_Out):
    """The seeds' tables for this installation (see shipyard.insights for definitions)."""

    runs: int
    summary: dict[str, Any] | None
    types: list[dict[str, Any]]
    weeks: list[dict[str, Any]]


class ErrorDetail(_Out):
    code: str = Field(description="Stable, machine-readable: unauthorized, forbidden, not_found…")
    message: str = Field(description="What happened and what to do, for a person.")
    problems: list[dict[str, str]] | None = Field(
        default=None, description="For invalid requests: each field and what is wrong with it."
    )


class ErrorBody(_Out):
    """Every error response: one shape, never a traceback."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"error": {"code": "not_found", "message": "there is no run 'x'"}}]
        }
    )

    error: ErrorDetail


_ERROR_STATUSES = {
    400: "The request is malformed.",
    401: "No valid token or session.",
    403: "The identity's role does not allow this, or a CSRF token is missing.",
    404: "No such record.",
    409: "The action could not be carried out in the current state.",
    413: "The body is too large.",
    422: "The request is invalid (fields named in problems).",
    503: "The feature is not configured on this server.",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _ERROR_STATUSES.items()
}
