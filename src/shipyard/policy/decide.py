"""``decide()``: change facts and a policy in, an action with every reason out (DESIGN invariant 5).

Pure: no I/O, no clock, no randomness. Every rule that fires adds a reason naming the measured
value, the threshold and the path or pattern involved; the most conservative action wins.
"""

from __future__ import annotations

import math
from typing import Any

from shipyard.model import Action, ChangeFacts, Decision, Reason

from .config import PolicyConfig
from .guardrails import PathRules

MAX_LISTED = 10
"""Paths named one by one per rule; beyond this a single reason counts the rest."""


def decide(facts: ChangeFacts, policy: PolicyConfig) -> Decision:
    """The action for a change, with one reason per rule that fired, most conservative first.

    Rules, by stable id:

    - ``change.empty`` (HALT): the change touches no files; there is nothing to deliver.
    - ``quality.unmeasured`` (HALT): the gates did not run or measured no pass rate. This halts
      rather than asks for review, because a reviewer would be approving a change nobody
      verified; the fix is to repair the measurement and run again.
    - ``quality.pass_rate``, ``quality.static_errors``, ``quality.coverage_delta`` (HALT): a
      measured value crosses its threshold. A missing coverage delta (no baseline coverage) is
      not a drop.
    - ``quality.test_integrity``, ``quality.performance``, ``quality.dependencies`` (HALT): the
      change weakens the tests, slows a benchmark past the threshold (confirmed twice), or leaves
      dependencies that do not resolve; ``quality.flaky`` (REVIEW by default): a test flipped
      between failing and passing on the change's tree.
    - ``paths.forbidden`` (HALT), ``paths.review`` and ``paths.outside_allowlist`` (REVIEW).
    - ``limits.files``, ``limits.lines`` (REVIEW): the change is too large to go without review.
    - ``routing.type`` (the action the change type routes to) and ``routing.merge_max_files``
      (REVIEW): a change routed to MERGE that touches more files than auto-merge allows.
    - ``quality.coverage_below_merge_min``, ``quality.coverage_unmeasured`` and
      ``quality.diff_coverage`` (REVIEW, the last only with ``min_diff_coverage`` set): checked
      only when every other rule would let the change land automatically (MERGE or
      STAGING_ONLY), since they exist to block automatic merges. Staging is an automatic merge
      too, and applying the floor there keeps ``decide`` monotone: routing a type more
      conservatively never makes the outcome more permissive.

    Reasons are ordered by action, most conservative first (stable otherwise), so ``reasons[0]`` is
    always one that explains the final action.
    """
    if not facts.diff.files:
        empty = Reason(
            rule="change.empty",
            action=Action.HALT,
            message="the change touches no files: nothing to deliver",
        )
        return Decision(
            action=Action.HALT, reasons=(empty,), inputs=_inputs(facts), policy=policy.name
        )
    reasons = [
        *_paths(facts, PathRules.from_config(policy.paths)),
        *_quality(facts, policy),
        *_integrity_and_health(facts, policy),
        *_limits(facts, policy),
        *_routing(facts, policy),
    ]
    if Action.most_conservative([r.action for r in reasons]).severity < Action.REVIEW.severity:
        reasons += _coverage_for_merge(facts, policy)
    ordered = sorted(reasons, key=lambda r: -r.action.severity)
    return Decision(
        action=Action.most_conservative([r.action for r in ordered]),
        reasons=tuple(ordered),
        inputs=_inputs(facts),
        policy=policy.name,
    )


def _paths(facts: ChangeFacts, rules: PathRules) -> list[Reason]:
    paths = facts.diff.paths
    out = _per_path(rules.forbidden(paths), "paths.forbidden", Action.HALT, "forbidden")
    out += _per_path(rules.review(paths), "paths.review", Action.REVIEW, "review")
    outside = rules.outside_allowlist(paths)
    if outside:
        verb = "is" if len(outside) == 1 else "are"
        out.append(
            Reason(
                rule="paths.outside_allowlist",
                action=Action.REVIEW,
                message=f"{_listing(outside)} {verb} outside the auto-merge allowlist",
            )
        )
    return out


def _integrity_and_health(facts: ChangeFacts, policy: PolicyConfig) -> list[Reason]:
    """Tests weakened, benchmarks slower, dependencies conflicting, tests flaky."""
    q = policy.quality
    out: list[Reason] = []
    findings = facts.integrity_findings
    if len(findings) > q.max_integrity_findings:
        out.append(
            Reason(
                rule="quality.test_integrity",
                action=Action.HALT,
                message=f"the change weakens the tests ({len(findings)} finding(s), "
                f"{q.max_integrity_findings} allowed): {_listing(findings)}",
            )
        )
    if facts.performance_regressions and q.halt_on_performance_regression:
        out.append(
            Reason(
                rule="quality.performance",
                action=Action.HALT,
                message=f"benchmarks regressed: {_listing(facts.performance_regressions)}",
            )
        )
    if facts.dependency_conflicts and q.halt_on_dependency_conflict:
        out.append(
            Reason(
                rule="quality.dependencies",
                action=Action.HALT,
                message=f"dependencies do not resolve: {_listing(facts.dependency_conflicts)}",
            )
        )
    if facts.flaky_tests:
        out.append(
            Reason(
                rule="quality.flaky",
                action=q.flaky_action,
                message=f"flaky tests (failed, then passed on a re-run; counted as failing): "
                f"{_listing(facts.flaky_tests)}",
            )
        )
    return out


def _per_path(hits: list[tuple[str, str]], rule: str, action: Action, kind: str) -> list[Reason]:
    out = [
        Reason(rule=rule, action=action, message=f"{path} matches {kind} pattern {pattern}")
        for path, pattern in hits[:MAX_LISTED]
    ]
    if len(hits) > MAX_LISTED:
        rest = len(hits) - MAX_LISTED
        out.append(
            Reason(rule=rule, action=action, message=f"{rest} more paths match {kind} patterns")
        )
    return out


def _quality(facts: ChangeFacts, policy: PolicyConfig) -> list[Reason]:
    q = policy.quality
    rate = facts.pass_rate
    if not facts.gates_ran or rate is None or math.isnan(rate):
        what = "the gates did not run" if not facts.gates_ran else "no test pass rate was measured"
        return [
            Reason(
                rule="quality.unmeasured",
                action=Action.HALT,
                message=f"{what}, so nothing verifies the change: halting instead of asking for "
                "review of unverified code; fix the test setup and run again",
            )
        ]
    out: list[Reason] = []
    if rate < q.min_pass_rate:
        failing = f"; failing: {_listing(facts.failing_tests)}" if facts.failing_tests else ""
        out.append(
            Reason(
                rule="quality.pass_rate",
                action=Action.HALT,
                message=f"pass rate {_num(rate * 100)} % is below the minimum "
                f"{_num(q.min_pass_rate * 100)} %{failing}",
            )
        )
    if facts.static_errors > q.max_static_errors:
        out.append(
            Reason(
                rule="quality.static_errors",
                action=Action.HALT,
                message=f"{facts.static_errors} static-analysis errors, more than the "
                f"{q.max_static_errors} allowed",
            )
        )
    delta = facts.coverage_delta
    if delta is not None and (math.isnan(delta) or delta < q.min_coverage_delta):
        out.append(
            Reason(
                rule="quality.coverage_delta",
                action=Action.HALT,
                message=f"coverage changed by {_num(delta, sign=True)} points against the "
                f"baseline, below the minimum of {_num(q.min_coverage_delta, sign=True)} points",
            )
        )
    return out


def _limits(facts: ChangeFacts, policy: PolicyConfig) -> list[Reason]:
    limits, diff = policy.limits, facts.diff
    out: list[Reason] = []
    if diff.files_changed > limits.review_max_files:
        out.append(
            Reason(
                rule="limits.files",
                action=Action.REVIEW,
                message=f"{diff.files_changed} files changed, more than the "
                f"{limits.review_max_files} allowed without review",
            )
        )
    if diff.lines_changed > limits.review_max_lines:
        out.append(
            Reason(
                rule="limits.lines",
                action=Action.REVIEW,
                message=f"{diff.lines_changed} lines changed ({diff.lines_added} added, "
                f"{diff.lines_deleted} deleted), more than the {limits.review_max_lines} "
                "allowed without review",
            )
        )
    return out


def _routing(facts: ChangeFacts, policy: PolicyConfig) -> list[Reason]:
    routing, kind = policy.routing, facts.change_type
    action = routing.route(kind)
    if kind in routing.types:
        message = f"change type {kind.value} routes to {action.value}"
    else:
        message = (
            f"change type {kind.value} is not in the routing table; the default is {action.value}"
        )
    if facts.type_note:
        message += f" ({facts.type_note})"
    out = [Reason(rule="routing.type", action=action, message=message)]
    files = facts.diff.files_changed
    if action is Action.MERGE and files > routing.merge_max_files:
        out.append(
            Reason(
                rule="routing.merge_max_files",
                action=Action.REVIEW,
                message=f"{files} files changed; {kind.value} changes merge automatically only up "
                f"to {routing.merge_max_files} files",
            )
        )
    return out


def _coverage_for_merge(facts: ChangeFacts, policy: PolicyConfig) -> list[Reason]:
    minimum = policy.quality.min_coverage_for_merge
    coverage = facts.coverage_percent
    # NaN compares false with every threshold, so it would slip past them: treat it as missing.
    if coverage is None or math.isnan(coverage):
        return [
            Reason(
                rule="quality.coverage_unmeasured",
                action=Action.REVIEW,
                message=f"coverage was not measured; merging automatically needs at least "
                f"{_num(minimum)} %",
            )
        ]
    out: list[Reason] = []
    if coverage < minimum:
        out.append(
            Reason(
                rule="quality.coverage_below_merge_min",
                action=Action.REVIEW,
                message=f"coverage {_num(coverage)} % is below the {_num(minimum)} % required "
                "to merge automatically",
            )
        )
    floor, changed = policy.quality.min_diff_coverage, facts.diff_coverage
    if floor is not None and changed is not None and not changed >= floor:
        out.append(
            Reason(
                rule="quality.diff_coverage",
                action=Action.REVIEW,
                message=f"tests run {_num(changed)} % of the added lines, below the "
                f"{_num(floor)} % required to merge automatically",
            )
        )
    return out


def _num(value: float, *, sign: bool = False) -> str:
    """Short and exact enough to compare with the threshold: 94.99, 95, -2.5, +0."""
    return f"{value:+.6g}" if sign else f"{value:.6g}"


def _listing(items: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _inputs(facts: ChangeFacts) -> dict[str, Any]:
    """The facts the decision used, as plain JSON values for events and reports."""
    return {
        "change_type": facts.change_type.value,
        "declared_type": facts.declared_type.value if facts.declared_type else None,
        "type_evidence": list(facts.type_evidence),
        "paths": list(facts.diff.paths),
        "files_changed": facts.diff.files_changed,
        "lines_added": facts.diff.lines_added,
        "lines_deleted": facts.diff.lines_deleted,
        "pass_rate": _plain(facts.pass_rate),
        "static_errors": facts.static_errors,
        "coverage_percent": _plain(facts.coverage_percent),
        "coverage_delta": _plain(facts.coverage_delta),
        "failing_tests": list(facts.failing_tests),
        "gates_ran": facts.gates_ran,
        "diff_coverage": _plain(facts.diff_coverage),
        "integrity_findings": list(facts.integrity_findings),
        "performance_regressions": list(facts.performance_regressions),
        "dependency_conflicts": list(facts.dependency_conflicts),
        "flaky_tests": list(facts.flaky_tests),
    }


def _plain(value: float | None) -> float | None:
    """NaN is not JSON; it means "not measured", which JSON spells null."""
    return None if value is None or math.isnan(value) else value
