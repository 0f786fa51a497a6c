"""Runs: the list with filters and pages, one run, its events, gate results, diff and transcript."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from shipyard.app import App
from shipyard.errors import NotFound, RepositoryError
from shipyard.events import in_gate_order
from shipyard.gitcmd import git
from shipyard.model import RunStatus
from shipyard.redaction import redact, redact_text
from shipyard.web.api.deps import registry, shipyard
from shipyard.web.api.schemas import (
    DiffOut,
    EventList,
    EventOut,
    GateList,
    GateOut,
    RunDetail,
    RunList,
    RunSummary,
    TranscriptOut,
)
from shipyard.web.auth import Role, require
from shipyard.web.queries import RunFilter, runs_page
from shipyard.web.registry import Registry

router = APIRouter(tags=["runs"], dependencies=[Depends(require(Role.VIEWER))])
AppDep = Annotated[App, Depends(shipyard)]
MAX_TRANSCRIPT_RECORDS = 5000
MAX_DIFF_BYTES = 2_000_000


@router.get("/runs", summary="List runs, newest first")
def list_runs(
    app: AppDep,
    reg: Annotated[Registry, Depends(registry)],
    status: Annotated[RunStatus | None, Query(description="Only runs in this state.")] = None,
    repo: Annotated[str | None, Query(max_length=64, description="A registered repo.")] = None,
    blueprint: Annotated[str | None, Query(max_length=64)] = None,
    source: Annotated[str | None, Query(max_length=64, description="cli, api, webhook…")] = None,
    requested_by: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        str | None, Query(max_length=64, description="A run id: the page after it.")
    ] = None,
) -> RunList:
    path = reg.repo(repo).path if repo is not None else None
    where = RunFilter(
        status=status, repo=path, blueprint=blueprint, source=source, requested_by=requested_by
    )
    page = runs_page(app.store, where, limit=limit, before=before)
    return RunList(runs=[RunSummary.of(s) for s in page.runs], next_cursor=page.next_cursor)


@router.get("/runs/{run_id}", summary="One run: its state, decision and reproducibility record")
def get_run(app: AppDep, run_id: str) -> RunDetail:
    state = app.run(run_id)
    return RunDetail.detail(state, app.store.events(state.run_id))


@router.get("/runs/{run_id}/events", summary="A run's events in order")
def run_events(
    app: AppDep,
    run_id: str,
    after: Annotated[int, Query(ge=0, description="Only events with a higher seq.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> EventList:
    state = app.run(run_id)
    events = app.store.events(state.run_id, after=after)[:limit]
    return EventList(run_id=state.run_id, events=[EventOut.of(e) for e in events])


@router.get("/runs/{run_id}/gates", summary="A run's gate results by phase")
def run_gates(app: AppDep, run_id: str) -> GateList:
    state = app.run(run_id)
    gates = []
    for phase in ("baseline", "change", "verdict"):
        by_gate = state.gates.get(phase, {})
        for name in in_gate_order(by_gate):
            d = by_gate[name]
            seconds = d.get("seconds")
            gates.append(
                GateOut(
                    gate=name,
                    phase=phase,
                    passed=bool(d.get("passed")),
                    status=str(d.get("status", "")),
                    summary=redact_text(str(d.get("summary", ""))),
                    seconds=float(seconds) if isinstance(seconds, int | float) else None,
                    details=redact(list(d.get("details") or [])),
                    facts=redact(dict(d.get("facts") or {})),
                )
            )
    return GateList(run_id=state.run_id, gates=gates)


@router.get("/runs/{run_id}/diff", summary="The change a run made, as a unified diff")
def run_diff(app: AppDep, run_id: str) -> DiffOut:
    state = app.run(run_id)
    if not state.base_commit or not state.change_commit:
        raise NotFound(f"run {state.run_id} has not committed a change (it is {state.status}).")
    repo = Path(str(state.task.get("repo", "")))
    try:
        done = git(
            "diff", "--no-color", "--no-ext-diff", "--no-textconv",
            state.base_commit, state.change_commit, cwd=repo,
        )  # fmt: skip
    except RepositoryError as exc:
        raise NotFound(
            f"the commits of run {state.run_id} are no longer in its repository: {exc}"
        ) from exc
    text = done.stdout
    if len(text) > MAX_DIFF_BYTES:
        text = text[:MAX_DIFF_BYTES] + "\n… (diff cut at 2 MB)\n"
    return DiffOut(
        run_id=state.run_id,
        base=state.base_commit,
        commit=state.change_commit,
        diff=redact_text(text),
    )


@router.get("/runs/{run_id}/transcript", summary="The agent's transcript, secrets masked")
def run_transcript(app: AppDep, run_id: str) -> TranscriptOut:
    state = app.run(run_id)
    record = app.agent_record(state.run_id)
    if record.transcript is None:
        raise NotFound(f"no agent ran in run {state.run_id}; it has no transcript.")
    path = Path(record.transcript)
    if not path.is_file():
        raise NotFound(f"the transcript of run {state.run_id} is no longer on this server.")
    messages: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if len(messages) >= MAX_TRANSCRIPT_RECORDS:
                break
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash
            if isinstance(value, dict):
                messages.append(redact(value))
    return TranscriptOut(run_id=state.run_id, messages=messages)
