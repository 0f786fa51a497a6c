"""Carry out a decision on the user's repository: merge, stage, ask for review, or halt.

Each irreversible step is recorded as an intent before and an outcome after (DESIGN invariant 7). A HALT
publishes nothing: the repository's branches stay exactly as they were.
"""

from __future__ import annotations

from typing import Any

from shipyard.blueprints.engine import RunContext
from shipyard.delivery.queue import Landing, MergeQueue, Reverify, Verified
from shipyard.events import EventType
from shipyard.forge import get_forge
from shipyard.model import Action, Decision
from shipyard.workspace import Workspace


def merge_message(title: str, decision: Decision | None = None) -> str:
    lines = [f"shipyard: {title}"]
    if decision is not None:
        lines += ["", f"Decision: {decision.action.value} ({decision.policy} policy)"]
        lines += [f"- {r.message}" for r in decision.reasons]
    return "\n".join(lines)


def deliver_decision(ctx: RunContext, reverify: Reverify | None = None) -> str:
    """Deliver according to ``ctx.values["decision"]``; returns a one-line outcome.

    MERGE and STAGING_ONLY go through the merge queue; ``reverify`` measures a change again when
    the target moved after it was verified.
    """
    decision: Decision = ctx.values["decision"]
    workspace: Workspace = ctx.values["workspace"]
    target: str = ctx.values["target"]
    forge = get_forge("local", ctx.values["repo_info"].path)
    queue = MergeQueue(forge, home=ctx.home, store=ctx.store)
    if decision.action is Action.HALT:
        first = decision.reasons[0].message if decision.reasons else "halted by policy"
        ctx.emit(EventType.RUN_HALTED, {"reason": first, "workspace": str(workspace.path)})
        return "halted; nothing was published"
    if decision.action is Action.REVIEW:
        with queue.lock(target):
            _intent(ctx, "publish", branch=workspace.branch, target=target)
            forge.publish(workspace)
            ctx.emit(
                EventType.REVIEW_REQUESTED,
                {"branch": workspace.branch, "target": target, "base": workspace.base_commit},
            )
        workspace.remove()
        return f"branch {workspace.branch} waits for review (shipyard review approve {ctx.run_id})"
    forge.publish(workspace)
    head: str = ctx.values["commit"]
    message = merge_message(ctx.task.title or ctx.task.blueprint, decision)
    staged = decision.action is Action.STAGING_ONLY
    into: str = ctx.values["policy"].staging_branch if staged else target
    if staged:
        forge.ensure_branch(into, start=target)
    landing = queue.land(
        ctx,
        branch=workspace.branch,
        into=into,
        # Staging collects changes to try out: each lands on its current head, not re-verified.
        verified=Verified(
            base="" if staged else workspace.base_commit, head=head, tree=forge.tree_of(head)
        ),
        message=message,
        proceed=frozenset({decision.action}),
        reverify=None if staged else reverify,
        event=EventType.DELIVERY_STAGED if staged else EventType.DELIVERY_MERGED,
        follow=staged,
    )
    workspace.remove()
    return describe(landing, into=into)


def describe(landing: Landing, *, into: str) -> str:
    if landing.outcome == "merged" and landing.commit:
        again = " after verifying it again" if landing.reverified else ""
        return f"merged into {into} as {landing.commit[:12]}{again}"
    if landing.outcome == "review":
        return f"waits for review: {landing.detail}"
    return f"halted: {landing.detail}"


def _intent(ctx: RunContext, action: str, **data: Any) -> None:
    ctx.emit(EventType.DELIVERY_INTENT, {"action": action, "key": f"{ctx.run_id}:{action}", **data})
