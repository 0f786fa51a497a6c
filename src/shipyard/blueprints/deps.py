"""The ``deps`` blueprint: make one planned run's updates (or refresh the lock files), verify them in
a sandbox, decide by policy, deliver.

Planning (``shipyard.deps.planning``) runs on the host against the package index and yields one
task per planned run: a security fix, an update or a group of updates, or lock file maintenance.
Each task then runs this blueprint on its own branch: the host reads release notes and the index's
file hashes, the manifests are edited and their lock files re-resolved in the sandbox, the harness
verifies the committed tree, and the policy decides. A risk assessment that says not to proceed
turns a MERGE (or STAGING_ONLY) into REVIEW; it never makes a decision more permissive.
"""

from __future__ import annotations

from typing import Any, cast

import httpx
from packaging.version import Version

from shipyard.agent.providers import ProviderError, get_provider
from shipyard.blueprints.engine import Blueprint, RunContext, Step, StopRun
from shipyard.blueprints.nodes import decide_node, deliver, finish, prepare, record_commit, verify
from shipyard.config import DEFAULT_INDEX
from shipyard.deps.index import PackageIndex
from shipyard.deps.manifests import (
    Change,
    Dependency,
    LockTools,
    apply_changes,
    discover,
    refresh_locks,
)
from shipyard.deps.moves import moved
from shipyard.deps.render import commit_message
from shipyard.deps.risk import Assessment, assess_with_model, fetch_notes, heuristic, render
from shipyard.events import EventType
from shipyard.model import Action, Decision, Reason
from shipyard.policy.explain import decision_data
from shipyard.sandbox import get_sandbox
from shipyard.sandbox.egress import EgressSandbox
from shipyard.workspace import Workspace

RISK_RULE = "deps.risk"


def _index_url(ctx: RunContext) -> str:
    assert ctx.config is not None
    return str(
        ctx.task.params.get("index_url") or ctx.config.config.deps.index_url or DEFAULT_INDEX
    )


def assess(ctx: RunContext) -> None:
    """Record the updates, then assess their risk: the model reads release notes fetched here on
    the host when ``[deps] risk_assessment = "model"``; otherwise (or when it fails) the heuristic."""
    assert ctx.config is not None
    params = ctx.task.params
    updates: list[dict[str, Any]] = list(params.get("updates", []))
    ctx.emit(
        EventType.DEPS_UPDATES,
        {
            "kind": params.get("run_kind", "update"),
            "group": params.get("group"),
            "updates": updates,
            "left_alone": list(params.get("left_alone", [])),
        },
    )
    problems: list[str] = []
    if ctx.config.config.deps.risk_assessment == "model" and updates:
        agent = ctx.config.config.agent
        notes: dict[str, str] = {}
        with httpx.Client(timeout=15, follow_redirects=True, trust_env=False) as client:
            for u in updates:
                text = fetch_notes(
                    u.get("links", {}), current=u["current"], target=u["target"], get=client.get
                )
                if text:
                    notes[u["package"]] = text
        try:
            provider = get_provider(agent)
        except ProviderError as exc:  # no key, unknown provider: the heuristic stands in
            assessment: Assessment = heuristic(updates)
            problems.append(f"no model: {exc}")
        else:
            model = str(params.get("model") or agent.model_for("deps"))
            assessment, problems = assess_with_model(updates, notes, provider=provider, model=model)
    else:
        assessment = heuristic(updates)
    ctx.values["risk"] = assessment
    ctx.emit(EventType.DEPS_RISK, {**assessment.event(), "problems": problems})
    ctx.values["summary"] = render(assessment)


def bump(ctx: RunContext) -> None:
    """Make the planned changes (or refresh every lock) in the workspace and commit them."""
    workspace: Workspace = ctx.values["workspace"]
    params = ctx.task.params
    index_url = _index_url(ctx)
    sandbox = cast(EgressSandbox, get_sandbox("bwrap"))
    tools = LockTools(cache_dir=ctx.home / "cache" / "lock-tools")

    def on_event(data: dict[str, object]) -> None:
        ctx.emit(EventType.LOG, {"message": str(data.get("message", "lock tool")), **data})

    updates: list[dict[str, Any]] = list(params.get("updates", []))
    if params.get("run_kind") == "lock":

        def pins() -> list[Dependency]:
            return [d for m in discover(workspace.path) for d in m.dependencies()]

        before = pins()
        changed = refresh_locks(
            workspace.path, sandbox=sandbox, index_url=index_url, tools=tools, on_event=on_event
        )
        # what moved is known only now: record it for the report and the commit message
        updates = moved(before, pins())
        ctx.emit(
            EventType.DEPS_UPDATES,
            {
                "kind": "lock",
                "group": params.get("group"),
                "updates": updates,
                "left_alone": list(params.get("left_alone", [])),
            },
        )
    else:
        changes = [
            Change(
                canonical_name=c["canonical_name"],
                manifest=c["manifest"],
                new_version=Version(c["new_version"]),
                new_specifier=c.get("new_specifier"),
                section=c.get("section"),
            )
            for u in params.get("updates", [])
            for c in u.get("changes", [])
        ]
        # File hashes come from the index on the host, with the host's credentials for it.
        with PackageIndex(index_url, cache_dir=ctx.home / "cache" / "http") as index:
            changed = apply_changes(
                workspace.path,
                changes,
                sandbox=sandbox,
                index_url=index_url,
                hashes=index.hashes,
                tools=tools,
                on_event=on_event,
            )
    if not changed:
        raise StopRun(
            EventType.RUN_NOOP,
            {"reason": "the manifests and lock files are already up to date"},
        )
    risk: Assessment | None = ctx.values.get("risk")
    record_commit(ctx, commit_message(ctx.task.title, updates, render(risk) if risk else ""))


def decide_with_risk(ctx: RunContext) -> None:
    """The policy's decision, then the risk assessment: ``proceed = false`` asks for a review."""
    decide_node(ctx)
    decision: Decision = ctx.values["decision"]
    risk: Assessment | None = ctx.values.get("risk")
    if risk is None or risk.proceed or decision.action not in (Action.MERGE, Action.STAGING_ONLY):
        return
    reason = Reason(
        rule=RISK_RULE,
        action=Action.REVIEW,
        message=f"the {risk.source} risk assessment asks for a review: {render(risk)}",
    )
    escalated = Decision(
        action=Action.REVIEW,
        reasons=(*decision.reasons, reason),
        inputs={**decision.inputs, "risk": risk.event()},
        policy=decision.policy,
    )
    ctx.values["decision"] = escalated
    ctx.emit(EventType.DECISION_MADE, {**decision_data(escalated), "escalated_by": RISK_RULE})
    ctx.values["summary"] = f"{escalated.action.value} (risk assessment: {risk.risk_level})"


DEPS = Blueprint(
    name="deps",
    version="2",
    description="Update dependencies (a security fix, an update, a group, or the lock files), "
    "verify in a sandbox, decide by policy, deliver.",
    steps=(
        Step("prepare", prepare),
        Step("assess", assess),
        Step("change", bump),
        Step("verify", verify),
        Step("decide", decide_with_risk),
        Step("deliver", deliver),
    ),
    finish=finish,
)
