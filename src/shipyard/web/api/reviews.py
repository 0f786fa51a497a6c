"""The review queue: changes waiting for a person, approved through the merge queue or rejected."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from shipyard.app import App
from shipyard.web.api.deps import approvals, shipyard
from shipyard.web.api.schemas import ApprovalAccepted, ReviewDecision, RunDetail, RunSummary
from shipyard.web.approvals import Approvals
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
    status_code=202,
    summary="Approve: merge through the merge queue (reviewer; not the run's requester)",
    description=(
        "Checks the approval and answers at once (202); the merge continues in the background: "
        "the merge queue rebases and re-verifies the change when the target moved, then merges "
        "it exactly once. Follow the run (GET /api/runs/{id} or its stream) until it is merged. "
        "A second approval while one is under way starts nothing (started: false). The "
        "identity that requested the run cannot approve it (403, code review_refused)."
    ),
)
def approve(
    run_id: str,
    identity: Annotated[Identity, Depends(require(Role.REVIEWER))],
    queue: Annotated[Approvals, Depends(approvals)],
    decision: Annotated[ReviewDecision | None, Body()] = None,
) -> ApprovalAccepted:
    comment = decision.comment if decision else ""
    done = queue.start(run_id, by=identity.name, comment=comment)
    message = (
        f"approved by {identity.name}; merging through the merge queue"
        if done.started
        else "an approval of this run is already under way"
    )
    return ApprovalAccepted(run_id=done.state.run_id, started=done.started, message=message)


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
