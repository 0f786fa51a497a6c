"""The ``submit`` blueprint: verify and deliver a patch produced elsewhere (by a person or another agent)."""

from __future__ import annotations

from pathlib import Path

from shipyard.blueprints.engine import Blueprint, RunContext, Step
from shipyard.blueprints.nodes import decide_node, deliver, finish, prepare, record_commit, verify
from shipyard.workspace import Workspace


def apply_patch(ctx: RunContext) -> None:
    """Apply the submitted patch to the workspace and commit it on the run branch."""
    workspace: Workspace = ctx.values["workspace"]
    patch = Path(ctx.task.params["patch"])
    workspace.apply_patch(patch)
    change_type = ctx.task.params.get("change_type", "other")
    title = ctx.task.title or f"Apply {patch.name}"
    record_commit(ctx, f"{title}\n\nSubmitted patch: {patch.name}\nDeclared type: {change_type}")


SUBMIT = Blueprint(
    name="submit",
    version="1",
    description="Apply a patch, verify it in a sandbox, decide by policy, deliver.",
    steps=(
        Step("prepare", prepare),
        Step("change", apply_patch),
        Step("verify", verify),
        Step("decide", decide_node),
        Step("deliver", deliver),
    ),
    finish=finish,
)
