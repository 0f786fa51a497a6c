"""Carry out a decision on the user's repository: merge, stage, ask for review, or halt.

Each irreversible step is recorded as an intent before and an outcome after (DESIGN invariant 7). A HALT
publishes nothing: the repository's branches stay exactly as they were.
"""

from __future__ import annotations

from typing import Any

from shipyard.blueprints.engine import RunContext
from shipyard.events import EventType
from shipyard.forge import Forge, get_forge
from shipyard.model import Action, Decision
from shipyard.workspace import Workspace


def merge_message(title: str, run_id: str, decision: Decision | None = None) -> str:
    lines = [f"shipyard: {title}", "", f"Run: {run_id}"]
    if decision is not None:
        lines.append(f"Decision: {decision.action.value} ({decision.policy} policy)")
        lines += [f"- {r.message}" for r in decision.reasons]
    return "\n".join(lines)


def deliver_decision(ctx: RunContext) -> str:
    """Deliver according to ``ctx.values["decision"]``; returns a one-line outcome."""
    decision: Decision = ctx.values["decision"]
    workspace: Workspace = ctx.values["workspace"]
    target: str = ctx.values["target"]
    forge = get_forge("local", ctx.values["repo_info"].path)
    if decision.action is Action.HALT:
        first = decision.reasons[0].message if decision.reasons else "halted by policy"
        ctx.emit(EventType.RUN_HALTED, {"reason": first, "workspace": str(workspace.path)})
        return "halted; nothing was published"
    if decision.action is Action.REVIEW:
        _intent(ctx, "publish", branch=workspace.branch, target=target)
        forge.publish(workspace)
        ctx.emit(
            EventType.REVIEW_REQUESTED,
            {"branch": workspace.branch, "target": target, "base": workspace.base_commit},
        )
        workspace.remove()
        return f"branch {workspace.branch} waits for review (shipyard review approve {ctx.run_id})"
    if decision.action is Action.STAGING_ONLY:
        staging: str = ctx.values["policy"].staging_branch
        return _merge(
            ctx, forge, workspace, into=staging, start=target, event=EventType.DELIVERY_STAGED
        )
    return _merge(ctx, forge, workspace, into=target, start=None, event=EventType.DELIVERY_MERGED)


def _merge(
    ctx: RunContext,
    forge: Forge,
    workspace: Workspace,
    *,
    into: str,
    start: str | None,
    event: EventType,
) -> str:
    decision: Decision = ctx.values["decision"]
    if start is not None:
        forge.ensure_branch(into, start=start)
    expected = workspace.base_commit if start is None else None
    forge.publish(workspace)
    commit = merge_recorded(
        ctx,
        forge,
        branch=workspace.branch,
        into=into,
        message=merge_message(ctx.task.title or ctx.task.blueprint, ctx.run_id, decision),
        expected=expected,
        event=event,
    )
    workspace.remove()
    return f"merged into {into} as {commit[:12]}"


def merge_recorded(
    ctx: RunContext,
    forge: Forge,
    *,
    branch: str,
    into: str,
    message: str,
    expected: str | None,
    event: EventType = EventType.DELIVERY_MERGED,
) -> str:
    """The one way a run's branch lands: intent recorded, merged at most once, branch deleted, outcome
    recorded. A retry after a crash finds the earlier merge instead of merging again."""
    _intent(ctx, "merge", branch=branch, target=into, expected_target=expected)
    commit = forge.merge(branch, into, message=message, expected_target=expected)
    forge.delete_branch(branch)
    ctx.emit(event, {"target": into, "commit": commit, "branch": branch})
    return commit


def _intent(ctx: RunContext, action: str, **data: Any) -> None:
    ctx.emit(EventType.DELIVERY_INTENT, {"action": action, "key": f"{ctx.run_id}:{action}", **data})
