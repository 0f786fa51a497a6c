"""Deterministic nodes every blueprint shares: prepare, verify, decide, deliver, report.

Only ``deliver`` touches the user's repository, and only after a decision (DESIGN invariant 7).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from shipyard.blueprints.engine import RunContext
from shipyard.config import DEFAULT_INDEX, GatesConfig, LoadedConfig, load_config
from shipyard.delivery.deliver import deliver_decision
from shipyard.delivery.report import write_report
from shipyard.errors import RepositoryError
from shipyard.events import EventType
from shipyard.gates.base import ChangeView
from shipyard.gates.harness import Harness
from shipyard.gates.tests import TestComparison
from shipyard.model import ChangeFacts, ChangeType, Decision, DiffFacts, Finding, GateResult
from shipyard.policy import PolicyConfig, decide, load_policy
from shipyard.policy.classify import ResolvedType, classify, reconcile
from shipyard.policy.explain import decision_data
from shipyard.sandbox import get_sandbox
from shipyard.workspace import Workspace, changed_files, inspect_repo


def prepare(ctx: RunContext) -> None:
    """Check the repository, read its configuration, and clone a workspace at the target's head."""
    info = inspect_repo(Path(ctx.task.repo))
    loaded, policy = configure(ctx, info.path)
    target = loaded.config.repo.target_branch or info.branch
    if not target:
        raise RepositoryError(
            f"{info.path}: HEAD is detached and shipyard.toml sets no repo.target_branch; "
            "check out the branch changes should land on, or set [repo] target_branch."
        )
    workspace = Workspace.create(
        info.path, base_ref=target, run_id=ctx.run_id, root=ctx.home / "workspaces"
    )
    ctx.values.update(repo_info=info, workspace=workspace, target=target, policy=policy)
    ctx.emit(
        EventType.LOG,
        {
            "message": f"workspace at {target} {workspace.base_commit[:12]}",
            "config": loaded.source_name,
            "policy": policy.name,
            "base": workspace.base_commit,
            "target": target,
            "reproducibility": {
                "config_sha256": config_hash(loaded.raw, policy.model_dump(mode="json")),
                "policy": policy.model_dump(mode="json"),
            },
        },
    )
    ctx.values["summary"] = f"{target} at {workspace.base_commit[:12]}, policy {policy.name}"


def configure(ctx: RunContext, repo: Path) -> tuple[LoadedConfig, PolicyConfig]:
    """Read the repository's shipyard.toml and policy into the run context."""
    loaded = load_config(repo)
    ctx.config = loaded
    policy = load_policy(
        loaded.config.preset,
        loaded.config.policy_overrides,
        source=loaded.source_name,
        base_dir=repo,
    )
    ctx.values["policy"] = policy
    return loaded, policy


def config_hash(*parts: Any) -> str:
    """A stable fingerprint of the configuration a run used (file contents and the resolved policy)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def record_commit(ctx: RunContext, message: str) -> str:
    """Commit the workspace's change on the run branch and record it."""
    workspace: Workspace = ctx.values["workspace"]
    commit = workspace.commit(without_trailers(message))
    diff = workspace.diff_facts(workspace.base_commit, commit)
    ctx.values.update(commit=commit, diff=diff)
    ctx.emit(
        EventType.CHANGE_COMMITTED,
        {
            "branch": workspace.branch,
            "commit": commit,
            "base": workspace.base_commit,
            "files": [f.path for f in diff.files],
            "lines_added": diff.lines_added,
            "lines_deleted": diff.lines_deleted,
        },
    )
    resolved = classify_change(ctx, workspace.path, workspace.base_commit, commit, diff)
    ctx.values["summary"] = (
        f"{diff.files_changed} file(s), +{diff.lines_added} -{diff.lines_deleted} on "
        f"{workspace.branch}, {resolved.change_type.value}"
    )
    return commit


RESERVED_TRAILERS = re.compile(
    r"^\s*(Shipyard-Run|Shipyard-Rollback)\s*:", re.IGNORECASE | re.MULTILINE
)


def without_trailers(message: str) -> str:
    """``message`` with shipyard's own trailers defused: they mark merges and reverts, and text a
    task or an agent wrote must never look like one."""
    return RESERVED_TRAILERS.sub(lambda m: f"{m.group(1)} (quoted):", message)


def classify_change(
    ctx: RunContext, repo: Path, base: str, commit: str, diff: DiffFacts
) -> ResolvedType:
    """Classify the change from its contents and keep the more conservative of claim and observation."""
    declared = ChangeType(ctx.task.params.get("change_type", ChangeType.OTHER))
    files = changed_files(repo, base, commit, diff)
    ctx.values["changed_files"] = files
    resolved = reconcile(declared, classify(files), ctx.values["policy"].routing)
    ctx.values["change_type"] = resolved
    ctx.emit(
        EventType.CHANGE_CLASSIFIED,
        {
            "declared": declared.value,
            "observed": [t.value for t in resolved.observed],
            "change_type": resolved.change_type.value,
            "note": resolved.note,
            "evidence": list(resolved.evidence),
        },
    )
    return resolved


def verify(ctx: RunContext) -> None:
    """Measure the base and the change with the harness, each on its committed tree in a fresh sandbox."""
    workspace: Workspace = ctx.values["workspace"]
    facts, comparison = measure(ctx, workspace.path, workspace.base_commit, ctx.values["commit"])
    ctx.values.update(facts=facts, comparison=comparison)
    ctx.values["summary"] = (
        f"pass rate {comparison.pass_rate:.2%} over {comparison.counted} tests"
        + (f", {len(comparison.failing)} failing" if comparison.failing else "")
        + (
            f", coverage {comparison.coverage_percent:.1f} % ({comparison.coverage_delta:+.1f})"
            if comparison.coverage_percent is not None and comparison.coverage_delta is not None
            else ""
        )
    )


def harness_for(ctx: RunContext, gates: GatesConfig | None = None) -> Harness:
    """The run's harness: its gate configuration (or ``gates``), index and shared cache."""
    assert ctx.config is not None
    index_url = str(
        ctx.task.params.get("index_url") or ctx.config.config.deps.index_url or DEFAULT_INDEX
    )
    return Harness(
        sandbox=get_sandbox("bwrap"),
        config=gates or ctx.config.config.gates,
        index_url=index_url,
        cache_dir=ctx.home / "cache",
    )


def measure(
    ctx: RunContext, repo: Path, base: str, head: str
) -> tuple[ChangeFacts, TestComparison]:
    """Run the gates on ``base`` and ``head`` of ``repo``, record them, and build the policy's facts."""
    harness = harness_for(ctx)
    diff: DiffFacts = ctx.values["diff"]
    files = ctx.values.get("changed_files")
    view = ChangeView.of(
        files if files is not None else changed_files(repo, base, head, diff),
        allowed_removals=tuple(ctx.task.params.get("allow_removed_tests", ())),
    )

    def record(result: GateResult, phase: str, commit: str, cached: bool) -> None:
        ctx.emit(
            EventType.GATE_FINISHED,
            {
                "gate": result.gate,
                "phase": phase,
                "passed": result.passed,
                "status": result.status,
                "summary": result.summary,
                "facts": result.facts,
                "details": list(result.details[:MAX_DETAILS]),
                "seconds": result.duration_seconds,
                "commit": commit,
                "cached": cached,
            },
        )

    verification = harness.verify(repo, base, head, scratch=ctx.run_dir, view=view, record=record)
    flaky = tuple(verification.verdict_facts("flaky").get("flaky", ()))
    if flaky:
        ctx.emit(
            EventType.TESTS_FLAKY,
            {"repo": str(Path(ctx.task.repo).resolve()), "tests": list(flaky), "commit": head},
        )
    comparison = verification.comparison
    change = verification.change.tests
    resolved: ResolvedType = ctx.values["change_type"]
    facts = ChangeFacts(
        change_type=resolved.change_type,
        declared_type=resolved.declared,
        type_note="" if resolved.confirmed else resolved.note,
        type_evidence=resolved.evidence,
        diff=diff,
        pass_rate=comparison.pass_rate,
        static_errors=int(verification.verdict_facts("static").get("introduced", 0)),
        coverage_percent=comparison.coverage_percent,
        coverage_delta=comparison.coverage_delta,
        failing_tests=comparison.failing,
        gates_ran=bool(change.cases) or change.install_failed,
        diff_coverage=verification.verdict_facts("coverage").get("diff_coverage"),
        integrity_findings=_rendered(verification.verdict_facts("integrity").get("findings")),
        performance_regressions=tuple(
            verification.verdict_facts("performance").get("regressions", ())
        ),
        dependency_conflicts=tuple(verification.verdict_facts("resolution").get("conflicts", ()))
        + tuple(verification.verdict_facts("resolution").get("check", ())),
        flaky_tests=flaky,
    )
    return facts, comparison


MAX_DETAILS = 200
"""Detail lines recorded per gate result; the full output stays in the run directory."""


def _rendered(findings: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(Finding(**f).render() for f in findings or ())


def reverify(ctx: RunContext, base: str, head: str) -> Decision:
    """Verify ``head`` (a change rebased onto ``base``) from scratch and decide again.

    The commits are read from the user's repository into a fresh workspace; gates, classification
    and decision are recorded like the first time.
    """
    ctx.log(f"verifying again on {base[:12]}: the target moved since the first verification")
    workspace = Workspace.create(
        Path(ctx.task.repo),
        base_ref=head,
        run_id=f"{ctx.run_id}.recheck",
        root=ctx.home / "workspaces",
    )
    try:
        diff = workspace.diff_facts(base, head)
        ctx.values["diff"] = diff
        classify_change(ctx, workspace.path, base, head, diff)
        facts, _ = measure(ctx, workspace.path, base, head)
    finally:
        workspace.remove()
    decision = decide(facts, ctx.values["policy"])
    ctx.emit(EventType.DECISION_MADE, {**decision_data(decision), "reverified": True})
    return decision


def decide_node(ctx: RunContext) -> None:
    """Apply the policy to the measured facts. Pure: the policy sees facts, not the workspace."""
    decision = decide(ctx.values["facts"], ctx.values["policy"])
    ctx.values["decision"] = decision
    ctx.emit(EventType.DECISION_MADE, decision_data(decision))
    ctx.values["summary"] = f"{decision.action.value} ({len(decision.reasons)} rule(s) fired)"


def deliver(ctx: RunContext) -> None:
    """Carry out the decision on the user's repository through the forge."""
    outcome = deliver_decision(ctx, reverify=lambda base, head: reverify(ctx, base, head))
    ctx.values["summary"] = outcome


def finish(ctx: RunContext) -> None:
    """Write the run's markdown report, whatever the outcome, and point to it from the log."""
    path = write_report(ctx)
    ctx.emit(EventType.LOG, {"message": f"report written to {path}", "report": str(path)})
