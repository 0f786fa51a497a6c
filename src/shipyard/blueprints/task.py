"""The agent blueprints: ``task``, ``fix-tests``, ``lint-fix`` and ``ci-fix``.

Each prepares a workspace, lets the agent change it with its granted tools, commits, formats and
lints, verifies with the gates (handing failures back within the fix-cycle cap), decides by policy
and delivers, exactly like the deterministic blueprints do after their change.
"""

from __future__ import annotations

from pathlib import Path

from shipyard.agent.providers import ProviderError, get_provider
from shipyard.blueprints.agent import (
    EDIT_TOOLS,
    commit_agent_change,
    dirty,
    ruff,
    start_agent,
    test_summary,
    verify_with_fixes,
)
from shipyard.blueprints.engine import Blueprint, RunContext, Step, StopRun
from shipyard.blueprints.nodes import (
    decide_node,
    deliver,
    finish,
    harness_for,
    prepare,
    record_commit,
)
from shipyard.events import EventType
from shipyard.workspace import Workspace

LOG_TAIL_CHARS = 12_000


def agent_task(ctx: RunContext) -> None:
    """The ``task`` blueprint's change: the agent implements what the task text asks."""
    text = str(ctx.task.params["task"])
    start_agent(ctx, task_text=f"Task:\n{text}")
    ctx.values["summary"] = ctx.values["agent_outcome"].reason


def agent_fix_tests(ctx: RunContext) -> None:
    """Measure the base; the agent makes its failing tests pass without weakening any test."""
    workspace: Workspace = ctx.values["workspace"]
    measured = harness_for(ctx).measure(workspace.path, workspace.base_commit,
                               scratch=ctx.run_dir / "base-tests", phase="baseline")  # fmt: skip
    wanted = [str(t) for t in ctx.task.params.get("tests", ())]
    failing = [t for t in measured.tests.failed if not wanted or any(w in t for w in wanted)]
    if not failing:
        raise StopRun(EventType.RUN_NOOP, {"reason": "no failing tests to fix on the base commit"})
    start_agent(
        ctx,
        task_text=(
            "These tests fail on the current code. Make them pass by fixing the code under test. "
            "Do not change what the tests expect, and do not skip, delete or weaken any test: the "
            "test-integrity gate halts such a change.\n\n" + test_summary(measured.tests)
        ),
    )
    ctx.values["summary"] = f"{len(failing)} failing test(s); {ctx.values['agent_outcome'].reason}"


def lint_autofix(ctx: RunContext) -> None:
    """ruff's automatic fixes first (no model); the agent only for what they leave, if configured."""
    workspace: Workspace = ctx.values["workspace"]
    remaining = format_and_lint_all(workspace)
    if dirty(workspace):
        record_commit(ctx, "Apply ruff's automatic fixes")
    if not remaining:
        if "commit" not in ctx.values:
            raise StopRun(EventType.RUN_NOOP, {"reason": "ruff reports nothing to fix"})
        ctx.values["agent_outcome"] = None
        ctx.values["summary"] = "ruff fixed every finding"
        return
    assert ctx.config is not None
    try:
        get_provider(ctx.config.config.agent)
    except ProviderError as exc:
        ctx.log(f"{len(remaining)} finding(s) need a model, and none is usable: {exc}")
        if "commit" not in ctx.values:
            raise StopRun(EventType.RUN_NOOP, {"reason": "no automatic fix, and no model"}) from exc
        ctx.values["agent_outcome"] = None
        return
    start_agent(
        ctx,
        task_text="Fix these linter findings without changing behaviour:\n"
        + "\n".join(remaining[:80]),
        grant=(*EDIT_TOOLS, "run_command", "recall", "finish"),
    )


def commit_if_agent(ctx: RunContext) -> None:
    if ctx.values.get("agent_outcome") is not None:
        commit_agent_change(ctx)


def agent_ci_fix(ctx: RunContext) -> None:
    """The agent reads a failing check's log and fixes its cause."""
    log_path = Path(str(ctx.task.params["log"]))
    text = log_path.read_text(encoding="utf-8", errors="replace")
    start_agent(
        ctx,
        task_text=(
            "A CI check failed on this commit. Find the cause and fix it in the code (not by "
            "disabling the check). The end of its log:\n\n" + text[-LOG_TAIL_CHARS:]
        ),
    )


def format_and_lint_all(workspace: Workspace) -> list[str]:
    """``ruff check --fix`` over the whole tree in the sandbox; the findings it could not fix."""
    ruff(workspace, "check", "--fix", "--exit-zero", "--quiet", ".", wall_seconds=300.0)
    return ruff(workspace, "check", "--exit-zero", "--output-format=concise", "--quiet", ".",
                wall_seconds=300.0)  # fmt: skip


def _agent_blueprint(name: str, description: str, change: Step) -> Blueprint:
    return Blueprint(
        name=name,
        version="1",
        description=description,
        steps=(
            Step("prepare", prepare),
            change,
            Step("commit", commit_if_agent),
            Step("verify", verify_with_fixes),
            Step("decide", decide_node),
            Step("deliver", deliver),
        ),
        finish=finish,
    )


TASK = _agent_blueprint(
    "task", "An agent implements or fixes what an issue text asks; verified, decided, delivered.",
    Step("agent", agent_task, kind="agent"),
)  # fmt: skip
FIX_TESTS = _agent_blueprint(
    "fix-tests", "An agent makes failing tests pass without weakening them.",
    Step("agent", agent_fix_tests, kind="agent"),
)  # fmt: skip
LINT_FIX = _agent_blueprint(
    "lint-fix", "ruff's automatic fixes, then an agent for the findings left.",
    Step("agent", lint_autofix, kind="agent"),
)  # fmt: skip
CI_FIX = _agent_blueprint(
    "ci-fix", "An agent fixes the cause of a failing check from its log.",
    Step("agent", agent_ci_fix, kind="agent"),
)  # fmt: skip

__all__ = ["CI_FIX", "FIX_TESTS", "LINT_FIX", "TASK"]
