"""The ``agent`` blueprint: bring your own agent. An external agent CLI (an adapter) makes the change
in the run's sandbox, with egress only to its model endpoint; from then on the change goes the way of
every agent change: commit, format and lint, gates with fix cycles, policy, delivery.

Lint findings and failing gates go back to the tool as a new run of it on the task plus the report,
within the same caps as the built-in agent (``agent.lint_passes``, ``agent.fix_cycles``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.agent.adapters import Adapter, get_adapter
from shipyard.agent.adapters.base import LaunchRequest
from shipyard.agent.adapters.endpoint import ModelEndpoint, check_reachable, model_endpoint
from shipyard.agent.adapters.run import AdapterRun, run_adapter
from shipyard.agent.adapters.toolenv import InstalledTool, locate, tools_root
from shipyard.agent.budget import Spend
from shipyard.agent.loop import AgentOutcome
from shipyard.blueprints.agent import commit_agent_change, verify_with_fixes
from shipyard.blueprints.engine import Blueprint, RunContext, Step, StopRun
from shipyard.blueprints.nodes import decide_node, deliver, finish, prepare
from shipyard.config import AgentConfig
from shipyard.errors import ConfigError
from shipyard.events import EventType
from shipyard.gitcmd import git
from shipyard.sandbox import BwrapSandbox
from shipyard.sandbox.base import Limits
from shipyard.workspace import Workspace


@dataclass(frozen=True, kw_only=True)
class ExternalPlan:
    """Everything a run of an external agent needs, resolved and checked before it starts."""

    adapter: Adapter
    tool: InstalledTool
    endpoint: ModelEndpoint
    model: str

    def record(self) -> dict[str, Any]:
        return {"adapter": self.adapter.name, "version": self.tool.version,
                "requirement": self.tool.requirement, "tool_env": str(self.tool.path),
                "wire": self.adapter.wire, "model": self.model,
                "endpoint": self.endpoint.record()}  # fmt: skip


def plan_external(
    agent: AgentConfig,
    params: Mapping[str, Any],
    *,
    home: Path,
    environ: Mapping[str, str],
    probe: bool = True,
) -> ExternalPlan:
    """Resolve adapter, tool, endpoint and model from the task's ``params`` over ``[agent.external]``.

    Raises a ShipyardError saying what to fix: an unknown adapter, its tool not installed, a bad
    endpoint or allowance, a missing key, or (``probe``) an endpoint that does not answer.
    """
    ext = agent.external
    name = params.get("adapter") or ext.adapter
    if not name:
        raise ConfigError(
            "no agent adapter chosen: pass --adapter NAME or set [agent.external] adapter in "
            "shipyard.toml (mini-swe-agent, aider, claude-code, codex)"
        )
    adapter = get_adapter(str(name))
    tool = locate(adapter, tools_root(home))
    endpoint = model_endpoint(
        adapter.wire, agent, endpoint=params.get("endpoint") or ext.endpoint,
        api_key_env=ext.api_key_env, allow_local=params.get("allow_local") or ext.allow_local,
        environ=environ,
    )  # fmt: skip
    if probe:
        check_reachable(endpoint)
    model = str(params.get("model") or ext.model or agent.model_for("agent"))
    return ExternalPlan(adapter=adapter, tool=tool, endpoint=endpoint, model=model)


class ExternalAgent:
    """An adapter's tool as the agent of a run: ``continue_with`` runs it again on the task plus
    what the harness found, like the built-in loop's next pass."""

    def __init__(self, ctx: RunContext, plan: ExternalPlan, task_text: str) -> None:
        assert ctx.config is not None
        self.ctx = ctx
        self.plan = plan
        self.task_text = task_text
        self.config = ctx.config.config.agent
        self.passes = 0
        self.spent = Spend()

    def start(self) -> AgentOutcome:
        return self._run(self.task_text)

    def continue_with(self, text: str) -> AgentOutcome:
        return self._run(f"{self.task_text}\n\n{text}")

    def _run(self, text: str) -> AgentOutcome:
        ctx, plan, workspace = self.ctx, self.plan, self.ctx.values["workspace"]
        left = self.config.max_wall_seconds - self.spent.seconds
        if left <= 1:
            return self._end(False, "budget: agent.max_wall_seconds is spent", "", None)
        self.passes += 1
        request = LaunchRequest(
            task=text, model=plan.model, base_url=plan.endpoint.base_url,
            max_steps=self.config.max_steps,
            max_cost_usd=max(self.config.max_cost_usd - self.spent.cost_usd, 0.0),
        )  # fmt: skip
        out_dir = ctx.run_dir / "agent" / f"pass-{self.passes}"
        ctx.log(f"{plan.adapter.name} {plan.tool.version}: pass {self.passes}")
        run = run_adapter(
            plan.adapter, plan.tool, plan.endpoint, request, sandbox=BwrapSandbox(),
            workspace=workspace.path, out_dir=out_dir, limits=Limits(wall_seconds=left),
        )  # fmt: skip
        for event in run.egress:
            ctx.emit(EventType.AGENT_EGRESS, dict(event))
        _refuse_leaked_key(ctx, workspace, plan.endpoint)
        tool = plan.adapter.outcome(run.exit_code, run.stdout, out_dir)
        if run.timed_out:
            reason = (
                f"budget: the tool ran out of wall time ({left:.0f} s of agent.max_wall_seconds)"
            )
            return self._end(False, reason, tool.summary, run)
        steps = tool.steps if tool.steps is not None else run.requests
        self.spent = Spend(steps=self.spent.steps + steps, tokens=self.spent.tokens,
                           cost_usd=self.spent.cost_usd + (tool.cost_usd or 0.0),
                           seconds=self.spent.seconds + run.seconds)  # fmt: skip
        reason = tool.reason if tool.finished or not run.stderr.strip() else (
            f"{tool.reason}: {run.stderr.strip().splitlines()[-1][:300]}"
        )  # fmt: skip
        return self._end(tool.finished, reason, tool.summary, run)

    def _end(
        self, finished: bool, reason: str, summary: str, run: AdapterRun | None
    ) -> AgentOutcome:
        data: dict[str, Any] = {"finished": finished, "reason": reason, "summary": summary[:2000],
                                "spend": self.spent.as_event(), "adapter": self.plan.adapter.name,
                                "pass": self.passes}  # fmt: skip
        if run is not None:
            data |= {"exit_code": run.exit_code, "requests": run.requests,
                     "logs": [str(p) for p in run.logs], "output_tail": run.stdout[-1500:]}  # fmt: skip
        self.ctx.emit(EventType.AGENT_FINISHED, data)
        return AgentOutcome(finished=finished, reason=reason, summary=summary, spend=self.spent)


def _refuse_leaked_key(ctx: RunContext, workspace: Workspace, endpoint: ModelEndpoint) -> None:
    """Halt, committing nothing, if the tool wrote the API key into the workspace: the key was
    handed to the tool's process only, and a commit would carry it to the forge."""
    key = endpoint.api_key.encode()
    if len(key) < 6:
        return
    status = git("status", "--porcelain", "--untracked-files=all", "-z", cwd=workspace.path).stdout
    paths = [entry[3:] for entry in status.split("\0") if len(entry) > 3]
    for path in paths:
        file = workspace.path / path
        try:
            leaked = file.is_file() and not file.is_symlink() and key in file.read_bytes()
        except OSError:
            continue
        if leaked:
            raise StopRun(
                EventType.RUN_HALTED,
                {"reason": f"the agent wrote the model API key into {path}; nothing was committed",
                 "workspace": str(workspace.path)},
            )  # fmt: skip


def external_agent(ctx: RunContext) -> None:
    """Run the chosen adapter's tool on the task in the sandbox; keep it for later passes."""
    assert ctx.config is not None
    plan = plan_external(ctx.config.config.agent, ctx.task.params, home=ctx.home,
                         environ=os.environ)  # fmt: skip
    record = plan.record()
    command = plan.adapter.launch(LaunchRequest(
        task=str(ctx.task.params["task"]), model=plan.model, base_url=plan.endpoint.base_url,
        max_steps=ctx.config.config.agent.max_steps, max_cost_usd=ctx.config.config.agent.max_cost_usd,
    )).argv  # fmt: skip
    ctx.emit(EventType.LOG, {
        "message": f"external agent {plan.adapter.name} {plan.tool.version}; egress only to "
                   f"{plan.endpoint.grant}" + (" (local endpoint allowance)" if plan.endpoint.grant.local else ""),
        "egress": {"grants": [str(plan.endpoint.grant)], "local": plan.endpoint.grant.local},
        "reproducibility": {"agent_adapter": {**record, "command": list(command)}},
    })  # fmt: skip
    agent = ExternalAgent(ctx, plan, f"{ctx.task.params['task']}")
    ctx.values["agent"] = agent
    ctx.emit(EventType.AGENT_STARTED, {
        "provider": f"{plan.adapter.name} {plan.tool.version}", "model": plan.model,
        "tools": [f"{plan.adapter.name} (its own)"], "adapter": record,
        "budget": {"wall_seconds": ctx.config.config.agent.max_wall_seconds,
                   "steps": ctx.config.config.agent.max_steps,
                   "cost_usd": ctx.config.config.agent.max_cost_usd},
        "transcript": str(ctx.run_dir / "agent"),
    })  # fmt: skip
    outcome = agent.start()
    ctx.values["agent_outcome"] = outcome
    ctx.values["summary"] = outcome.reason
    if not outcome.finished:
        raise StopRun(
            EventType.RUN_HALTED,
            {"reason": f"the agent stopped before finishing: {outcome.reason}",
             "workspace": str(ctx.values["workspace"].path)},
        )  # fmt: skip


EXTERNAL = Blueprint(
    name="agent",
    version="1",
    description="An external agent CLI (mini-swe-agent, aider, Claude Code, Codex) makes the change "
    "in the sandbox; verified, decided, delivered like any agent change.",
    steps=(
        Step("prepare", prepare),
        Step("agent", external_agent, kind="agent"),
        Step("commit", commit_agent_change),
        Step("verify", verify_with_fixes),
        Step("decide", decide_node),
        Step("deliver", deliver),
    ),
    finish=finish,
)

__all__ = ["EXTERNAL", "ExternalAgent", "ExternalPlan", "plan_external"]
