"""The review queue: changes waiting for a person, approved through the merge queue or rejected."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from shipyard.app import App
from shipyard.web.api.deps import shipyard
from shipyard.web.api.schemas import ReviewDecision, RunDetail, RunSummary
from shipyard.web.auth import Identity, Role, require

router = APIRouter(tags=["reviews"])
AppDep = Annotated[App, Depends(shipyard)]


@router.get(
    "/reviews",
    summary="Runs waiting for review",
    dependencies=[Depends(require(Role.VIEWER))],
)
def list_reviews(app: AppDep) -> list[RunSummary]:
    return [RunSummary.of(s) for s in app.reviews()]


@router.post(
    "/reviews/{run_id}/approve",
    summary="Approve: merge through the merge queue (reviewer; not the run's requester)",
    description=(
        "Rebases and re-verifies when the target moved, then merges exactly once. The identity "
        "that requested the run cannot approve it (403, code review_refused)."
    ),
)
def approve(
    run_id: str,
    identity: Annotated[Identity, Depends(require(Role.REVIEWER))],
    app: AppDep,
    decision: Annotated[ReviewDecision | None, Body()] = None,
) -> RunDetail:
    comment = decision.comment if decision else ""
    state = app.approve(run_id, by=identity.name, comment=comment)
    return RunDetail.detail(state, app.store.events(state.run_id))


@router.post("/reviews/{run_id}/reject", summary="Reject: nothing merges, the branch is deleted")
def reject(
    run_id: str,
    identity: Annotated[Identity, Depends(require(Role.REVIEWER))],
    app: AppDep,
    decision: Annotated[ReviewDecision | None, Body()] = None,
) -> RunDetail:
    comment = decision.comment if decision else ""
    state = app.reject(run_id, by=identity.name, comment=comment)
    return RunDetail.detail(state, app.store.events(state.run_id))
