"""Nodes of the agent blueprints: the agent's change, formatting passes, and fix cycles after gates.

The agent works in the run's workspace through its granted tools (each call in the sandbox); these
nodes, deterministic host code, commit what it wrote, format and lint it, verify it with the gates,
and hand failures back to it within the configured number of passes and cycles (DESIGN invariant 6:
at most 2 fix cycles, and a cycle whose failing tests equal the previous cycle's stops as no
progress).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from shipyard.agent.budget import Budget
from shipyard.agent.context.gather import gather_context
from shipyard.agent.loop import AgentLoop, AgentOutcome
from shipyard.agent.mcp import McpServers
from shipyard.agent.prompt import system_prompt
from shipyard.agent.providers import get_provider
from shipyard.agent.tools.base import PathGuard, ToolContext, Toolshed
from shipyard.agent.tools.builtin import builtin_tools
from shipyard.agent.tools.recall import Recall
from shipyard.agent.transcript import Transcript
from shipyard.blueprints.engine import RunContext, StopRun
from shipyard.blueprints.nodes import harness_for, record_commit, verify
from shipyard.events import EventType
from shipyard.gates.base import TOOLS_PYTHON, ChangeView, tools_mount
from shipyard.gates.environment import SANDBOX_ENV
from shipyard.gitcmd import git
from shipyard.model import Action, TestReport
from shipyard.policy import decide
from shipyard.policy.guardrails import PatternList
from shipyard.sandbox import get_sandbox
from shipyard.sandbox.base import Limits
from shipyard.workspace import Workspace, changed_files

EDIT_TOOLS = ("read_file", "list_files", "search", "edit_file", "write_file", "apply_patch")
"""What every agent blueprint grants: read and change files of the workspace."""
WORK_TOOLS = (*EDIT_TOOLS, "run_command", "run_tests", "recall", "finish")
"""Editing, running programs and tests in the sandbox, recalling compacted turns, finishing."""
CONTEXT_SHARE = 0.25
"""Share of the context window the gathered context (rules, task files, repo map) may take."""
FAILURES_SHOWN = 15


def toolshed() -> Toolshed:
    return Toolshed([*builtin_tools(), Recall()])


def start_agent(ctx: RunContext, *, task_text: str, grant: Sequence[str] = WORK_TOOLS) -> None:
    """Build the agent for this run, let it work on ``task_text``, and keep it for later passes."""
    assert ctx.config is not None
    config = ctx.config.config.agent
    workspace: Workspace = ctx.values["workspace"]
    policy = ctx.values["policy"]
    model = str(ctx.task.params.get("model") or config.model_for(ctx.task.blueprint))
    provider = get_provider(config)
    tools = toolshed().grant(grant)
    guard = PathGuard(forbidden=PatternList(policy.paths.forbidden),
                      review=PatternList(policy.paths.review))  # fmt: skip
    sandbox = get_sandbox("bwrap")
    tool_ctx = ToolContext(
        run_id=ctx.run_id, workspace=workspace.path, sandbox=sandbox, guard=guard,
        limits=Limits(wall_seconds=120.0), env=dict(SANDBOX_ENV),
        run_tests=lambda paths: _run_tests(ctx, paths),
    )  # fmt: skip
    gathered = gather_context(
        workspace.path, workspace.base_commit, task_text, store=ctx.store,
        repo=str(Path(ctx.task.repo).resolve()),
        budget_tokens=int(config.context_tokens * CONTEXT_SHARE),
        retrieval=config.retrieval, home=ctx.home,
    )  # fmt: skip
    for note in gathered.notes:
        ctx.log(note)
    # The repository's MCP servers whose capabilities the grant already has; one that cannot start
    # fails the run (McpServerError) rather than leaving the agent without its tools.
    mcp = McpServers.start(config.mcp, workspace=workspace.path, allowed=tools.capabilities)
    ctx.values["mcp"] = mcp
    if mcp.skipped:
        ctx.log(f"MCP servers not granted to {ctx.task.blueprint}: {', '.join(mcp.skipped)}")
    tools = mcp.grant(tools)
    loop = AgentLoop(
        provider=provider, model=model, tools=tools, ctx=tool_ctx, config=config,
        transcript=Transcript.for_run(ctx.run_dir), budget=Budget(config), emit=ctx.emit,
    )  # fmt: skip
    ctx.values["agent"] = loop
    ctx.emit(
        EventType.AGENT_STARTED,
        {
            "provider": provider.name, "model": model, "tools": list(tools.tools),
            "context": gathered.record(), "budget": loop.budget.limits.as_event(),
            "transcript": str(loop.transcript.path),
        },
    )  # fmt: skip
    system = system_prompt(
        blueprint=ctx.task.blueprint, tools=tools.specs, forbidden=policy.paths.forbidden,
        review=policy.paths.review, context=gathered.render(),
    )  # fmt: skip
    try:
        outcome = loop.start(system, task_text)
    finally:
        mcp.close()
    _after(ctx, outcome)


def _after(ctx: RunContext, outcome: AgentOutcome) -> None:
    """Keep the outcome; an agent that stopped before finishing gets nothing published."""
    mcp: McpServers | None = ctx.values.get("mcp")
    if mcp is not None:
        mcp.close()  # while the agent waits; each server starts again on its next call
    ctx.values["agent_outcome"] = outcome
    if not outcome.finished:
        workspace: Workspace = ctx.values["workspace"]
        raise StopRun(
            EventType.RUN_HALTED,
            {"reason": f"the agent stopped before finishing: {outcome.reason}",
             "workspace": str(workspace.path)},
        )  # fmt: skip


def commit_agent_change(ctx: RunContext) -> None:
    """Commit what the agent wrote, then format and lint it, handing leftovers back (≤ passes)."""
    workspace: Workspace = ctx.values["workspace"]
    outcome: AgentOutcome = ctx.values["agent_outcome"]
    if not dirty(workspace) and "commit" not in ctx.values:
        why = outcome.summary or outcome.reason
        raise StopRun(EventType.RUN_NOOP, {"reason": f"the agent changed nothing: {why}"})
    title = ctx.task.title or ctx.task.blueprint
    if dirty(workspace):
        record_commit(ctx, f"{title}\n\n{outcome.summary or outcome.reason}")
    _lint_passes(ctx)


def _lint_passes(ctx: RunContext) -> None:
    assert ctx.config is not None
    loop: AgentLoop = ctx.values["agent"]
    workspace: Workspace = ctx.values["workspace"]
    for attempt in range(ctx.config.config.agent.lint_passes + 1):
        remaining = format_and_lint(ctx, workspace)
        if dirty(workspace):
            record_commit(ctx, "shipyard: format and lint the agent's change")
        if not remaining or attempt == ctx.config.config.agent.lint_passes:
            if remaining:
                ctx.log(f"lint findings left after {attempt} pass(es): {len(remaining)}")
            return
        ctx.log(f"lint pass {attempt + 1}: {len(remaining)} finding(s) go back to the agent")
        outcome = loop.continue_with(
            "The linter reports these problems in the lines you changed; fix them, then call "
            "`finish`:\n" + "\n".join(remaining[:50])
        )
        _after(ctx, outcome)
        if dirty(workspace):
            record_commit(ctx, f"Fix lint findings\n\n{outcome.summary}")


def format_and_lint(ctx: RunContext, workspace: Workspace) -> list[str]:
    """``ruff format`` and ``ruff check --fix`` the Python files the change touches, in the sandbox;
    the findings left on lines the change added, as ``path:line: code message``."""
    changed = [p for p in _changed(workspace) if p.endswith(".py")]
    if not changed:
        return []
    ruff(workspace, "format", "--", *changed)
    ruff(workspace, "check", "--fix", "--exit-zero", "--quiet", "--", *changed)
    left = ruff(workspace, "check", "--exit-zero", "--output-format=concise", "--quiet", "--",
                *changed)  # fmt: skip
    added = _added_lines(workspace)
    found = []
    for line in left:
        path, _, rest = line.partition(":")
        number = rest.split(":", 1)[0]
        if number.isdigit() and int(number) in added.get(path, set()):
            found.append(line)
    return found


def ruff(workspace: Workspace, *args: str, wall_seconds: float = 120.0) -> list[str]:
    """Run shipyard's own ruff in the sandbox over the workspace; its non-empty output lines."""
    done = get_sandbox("bwrap").run(
        [TOOLS_PYTHON, "-m", "ruff", *args], workspace=workspace.path, env=SANDBOX_ENV,
        mounts=[tools_mount()], limits=Limits(wall_seconds=wall_seconds),
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if line.strip()]


def verify_with_fixes(ctx: RunContext) -> None:
    """Verify with the gates; while the policy would halt on quality, let the agent fix it (≤ cycles)."""
    assert ctx.config is not None
    loop: AgentLoop | None = ctx.values.get("agent")
    cycles = ctx.config.config.agent.fix_cycles
    previous: tuple[object, ...] | None = None
    for cycle in range(cycles + 1):
        verify(ctx)
        decision = decide(ctx.values["facts"], ctx.values["policy"])
        quality = [
            r for r in decision.reasons
            if r.rule.startswith("quality.") and r.action is Action.HALT
        ]  # fmt: skip
        if decision.action is not Action.HALT or not quality or loop is None or cycle == cycles:
            return
        failing = tuple(ctx.values["facts"].failing_tests)
        # The same failure is the same failing tests and the same other quality reasons: a halt
        # on static errors, coverage or integrity has no failing tests, yet may well improve.
        others = tuple((r.rule, r.message) for r in quality if r.rule != "quality.pass_rate")
        if previous is not None and (failing, others) == previous:
            ctx.log(f"fix cycle {cycle}: the gates found the same failures as before; no progress")
            ctx.emit(EventType.LOG, {"message": "no progress: stopping the fix cycles",
                                     "failing": list(failing)})  # fmt: skip
            return
        previous = (failing, others)
        ctx.log(f"fix cycle {cycle + 1} of {cycles}: {quality[0].message[:200]}")
        outcome = loop.continue_with(_failure_report(ctx, [r.message for r in quality]))
        _after(ctx, outcome)
        workspace: Workspace = ctx.values["workspace"]
        if not dirty(workspace):
            ctx.log("the agent changed nothing in the fix cycle")
            return
        record_commit(ctx, f"Fix after the gates (cycle {cycle + 1})\n\n{outcome.summary}")
        _lint_passes(ctx)


def _failure_report(ctx: RunContext, reasons: Sequence[str]) -> str:
    """What the gates found, for the agent: the policy's reasons and each failed gate's details."""
    lines = ["shipyard's gates measured your change and it cannot land yet:"]
    lines += [f"- {r}" for r in reasons]
    state = ctx.store.state(ctx.run_id)
    for name, data in state.gates.get("verdict", {}).items():
        if data.get("status") == "failed":
            lines.append(f"\n{name}: {data.get('summary', '')}")
            lines += [f"  {d}" for d in data.get("details", [])[:FAILURES_SHOWN]]
    lines.append("\nFix the code (not the tests' expectations), run the tests, then call `finish`.")
    return "\n".join(lines)


def _run_tests(ctx: RunContext, paths: Sequence[str]) -> str:
    """The harness's run of the tests on the workspace as it is now, for the agent's ``run_tests``."""
    assert ctx.config is not None
    workspace: Workspace = ctx.values["workspace"]
    snapshot = _snapshot(workspace.path)
    gates = ctx.config.config.gates
    if paths:
        gates = gates.model_copy(update={"tests": gates.tests.model_copy(
            update={"paths": list(paths)})})  # fmt: skip
    harness = harness_for(ctx, gates)
    with tempfile.TemporaryDirectory(dir=ctx.run_dir) as scratch:
        measured = harness.measure(workspace.path, snapshot, scratch=Path(scratch), phase="agent")
    return test_summary(measured.tests)


def test_summary(report: TestReport) -> str:
    """Counts, then each failing test with the end of its traceback."""
    if report.install_failed:
        return "the requirements could not be installed:\n" + report.output_tail[-2000:]
    failed = [c for c in report.cases if c.outcome in ("failed", "error")]
    head = f"{len(report.passed)} passed, {len(failed)} failed"
    if report.timed_out:
        head += " (the run timed out)"
    if report.coverage_percent is not None:
        head += f", coverage {report.coverage_percent:.1f} %"
    lines = [head]
    for case in failed[:FAILURES_SHOWN]:
        lines += [f"FAILED {case.id}: {case.message[:300]}", case.traceback[-1500:]]
    if not report.cases:
        lines.append(report.output_tail[-2000:])
    return "\n".join(lines)


def _snapshot(worktree: Path) -> str:
    """A commit of the worktree as it is, new files included, made without moving HEAD or a branch.

    The workspace is the run's own clone; staging everything in its index changes nothing the next
    commit would not stage anyway.
    """
    git("add", "--all", cwd=worktree)
    tree = git("write-tree", cwd=worktree).stdout.strip()
    return git("commit-tree", tree, "-p", "HEAD", "-m", "shipyard: agent snapshot",
               cwd=worktree).stdout.strip()  # fmt: skip


def dirty(workspace: Workspace) -> bool:
    """Whether the workspace has changes not yet committed, new files included."""
    return bool(git("status", "--porcelain", "--untracked-files=all", cwd=workspace.path).stdout)


def _changed(workspace: Workspace) -> list[str]:
    out = git("diff", "--name-only", "--diff-filter=AMR", workspace.base_commit, "HEAD",
              cwd=workspace.path).stdout  # fmt: skip
    return [line for line in out.splitlines() if line]


def _added_lines(workspace: Workspace) -> dict[str, set[int]]:
    """Line numbers each file gained since the base."""
    base = workspace.base_commit
    files = changed_files(workspace.path, base, "HEAD", workspace.diff_facts(base, "HEAD"))
    return {path: set(lines) for path, lines in ChangeView.of(files).added_lines().items()}
