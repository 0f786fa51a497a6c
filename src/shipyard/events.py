"""The append-only event log's vocabulary and the pure fold that derives a run's state from it.

No I/O here: the store persists events, this module only says what they mean.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from shipyard.model import RunStatus


class EventType(StrEnum):
    """Every kind of event a run records, with the keys its ``data`` carries."""

    RUN_CREATED = "run.created"  # task: {blueprint, repo, params, title, source, requested_by}
    NODE_STARTED = "node.started"  # node
    NODE_FINISHED = "node.finished"  # node, summary
    NODE_FAILED = "node.failed"  # node, error
    CHANGE_COMMITTED = "change.committed"  # branch, commit, base
    CHANGE_CLASSIFIED = "change.classified"  # declared, observed, change_type, note, evidence
    # gate, phase: baseline | change | verdict, passed, facts (tests at baseline and change:
    # sandbox_start_seconds, the start-up of a fresh sandbox for the gates)
    GATE_FINISHED = "gate.finished"
    TESTS_FLAKY = "tests.flaky"  # repo, tests, commit: tests that failed, then passed on a re-run
    DECISION_MADE = "decision.made"  # action, reasons: [{rule, action, message}], inputs, policy
    DELIVERY_INTENT = "delivery.intent"  # action, key: recorded before an irreversible step
    DELIVERY_MERGED = "delivery.merged"  # target, commit, branch
    DELIVERY_STAGED = "delivery.staged"  # target, commit, branch
    REVIEW_REQUESTED = "review.requested"  # branch (and target, base)
    REVIEW_APPROVED = "review.approved"  # by, comment
    REVIEW_REJECTED = "review.rejected"  # by, comment
    RUN_HALTED = "run.halted"  # reason
    RUN_FAILED = "run.failed"  # error
    RUN_NOOP = "run.noop"  # reason: there was nothing to change
    AGENT_STARTED = "agent.started"  # provider, model, tools, context sections, budget
    AGENT_STEP = "agent.step"  # step, model, usage, cost_usd, tool_calls, spend: the live spend
    AGENT_TOOL = "agent.tool"  # step, tool, ok, summary: one tool call and what it gave
    AGENT_COMPACTED = "agent.compacted"  # replaced, tokens_before, tokens_after, fallback
    AGENT_FINISHED = "agent.finished"  # finished, reason, summary, spend
    # type, host, port, method, reason: an external agent's connection
    AGENT_EGRESS = "agent.egress"
    ROLLOUT_STARTED = "rollout.started"  # target, commit, previous_commit, merged_at, config
    ROLLOUT_BASELINE = "rollout.baseline"  # value, start, end, source
    ROLLOUT_STAGE = "rollout.stage"  # stage, percent, ok, detail, seconds, at
    ROLLOUT_CHECK = "rollout.check"  # value, baseline, threshold, breach, stage, percent, at
    ROLLOUT_BREACHED = "rollout.breached"  # value, baseline, threshold, reason, at
    ROLLOUT_REVERTED = "rollout.reverted"  # revert_commit, target, seconds_to_revert, rollback
    ROLLOUT_COMPLETED = "rollout.completed"  # stages, checks
    ROLLOUT_STOPPED = "rollout.stopped"  # reason: the rollout waits for a person
    ROLLOUT_RESUMED = "rollout.resumed"  # by
    DEPS_UPDATES = "deps.updates"  # kind, group, updates: [{package, ...}], left_alone: [...]
    DEPS_RISK = "deps.risk"  # risk_level, breaking_changes, proceed, source, reasons, problems
    LOG = "log"  # message


@dataclass(frozen=True, kw_only=True)
class Event:
    """One recorded fact about a run. ``seq`` numbers a run's events 1, 2, 3… without gaps."""

    run_id: str
    seq: int
    type: str
    at: datetime
    data: dict[str, Any]


# The status each event moves a run to. A finished run keeps its status whatever comes later:
# a report written or a log line added after a merge does not make the merge untrue.
_STATUS_AFTER: dict[str, RunStatus] = {
    EventType.DELIVERY_MERGED: RunStatus.MERGED,
    EventType.DELIVERY_STAGED: RunStatus.STAGED,
    EventType.REVIEW_REQUESTED: RunStatus.AWAITING_REVIEW,
    EventType.REVIEW_REJECTED: RunStatus.REJECTED,
    EventType.RUN_HALTED: RunStatus.HALTED,
    EventType.RUN_FAILED: RunStatus.FAILED,
    EventType.RUN_NOOP: RunStatus.NOOP,
}


# Outcomes that settle an earlier delivery intent, whatever it was.
# A merged change that is rolled out moves on after its merge: these may change a finished status.
_ROLLOUT_STATUS: dict[str, tuple[frozenset[RunStatus], RunStatus]] = {
    EventType.ROLLOUT_STARTED: (frozenset({RunStatus.MERGED}), RunStatus.ROLLING_OUT),
    EventType.ROLLOUT_COMPLETED: (frozenset({RunStatus.ROLLING_OUT}), RunStatus.MERGED),
    EventType.ROLLOUT_REVERTED: (
        frozenset({RunStatus.ROLLING_OUT, RunStatus.ROLLOUT_STOPPED}),
        RunStatus.ROLLED_BACK,
    ),
    EventType.ROLLOUT_STOPPED: (frozenset({RunStatus.ROLLING_OUT}), RunStatus.ROLLOUT_STOPPED),
    EventType.ROLLOUT_RESUMED: (frozenset({RunStatus.ROLLOUT_STOPPED}), RunStatus.ROLLING_OUT),
}


_ROLLING = frozenset({RunStatus.ROLLING_OUT, RunStatus.ROLLOUT_STOPPED})


_SETTLES_INTENT = frozenset(
    {
        EventType.DELIVERY_MERGED,
        EventType.DELIVERY_STAGED,
        EventType.REVIEW_REQUESTED,
        EventType.REVIEW_REJECTED,
        EventType.RUN_HALTED,
        EventType.RUN_FAILED,
    }
)


GATE_ORDER = ("tests", "coverage", "static", "resolution", "integrity", "performance", "flaky")


def in_gate_order(names: Iterable[str]) -> list[str]:
    """Gate names in the order people read them (unknown gates last, by name), each once."""
    rank = {name: i for i, name in enumerate(GATE_ORDER)}
    return sorted(set(names), key=lambda n: (rank.get(n, len(GATE_ORDER)), n))


@dataclass(frozen=True, kw_only=True)
class RunState:
    """What a run's events add up to. Derived, never stored."""

    run_id: str
    task: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.QUEUED
    created_at: datetime | None = None
    updated_at: datetime | None = None
    node: str | None = None  # the node started last
    branch: str | None = None
    base_commit: str | None = None
    change_commit: str | None = None
    decision: dict[str, Any] | None = None  # {action, reasons: [{rule, action, message}], ...}
    gates: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # phase → gate → data
    delivered_target: str | None = None
    delivered_commit: str | None = None
    review_status: str | None = None  # requested | approved | rejected
    review_target: str | None = None
    review_base: str | None = None  # the target's commit the branch under review was verified on
    reviewed_by: str | None = None
    review_comment: str | None = None
    error: str | None = None
    reason: str | None = None  # why a run halted or had nothing to do
    pending_intent: dict[str, Any] | None = None  # an irreversible step begun and not yet settled
    rollout: dict[str, Any] | None = (
        None  # stage, percent, baseline, last_value, reason, revert_commit
    )
    last_seq: int = 0

    @property
    def finished(self) -> bool:
        """True once nothing more will happen to the run by itself."""
        return self.status.finished

    @property
    def action(self) -> str | None:
        """The policy's action, once decided."""
        return None if self.decision is None else str(self.decision.get("action"))


def fold(events: Iterable[Event]) -> RunState:
    """Derive a run's state from its events, in order. Pure and deterministic.

    Raises ValueError for an empty sequence (every run starts with ``run.created``) or for events
    of more than one run.
    """
    state: RunState | None = None
    for event in events:
        if state is None:
            state = RunState(run_id=event.run_id)
        state = apply(state, event)
    if state is None:
        raise ValueError("fold needs at least one event; a run starts with run.created")
    return state


def apply(state: RunState, event: Event) -> RunState:
    """The state after one more event. ``fold`` is this applied to each event in turn."""
    if event.run_id != state.run_id:
        raise ValueError(f"event of run {event.run_id} applied to run {state.run_id}")
    d = event.data
    changes: dict[str, Any] = {
        "updated_at": event.at,
        "last_seq": event.seq,
        "created_at": state.created_at or event.at,
    }
    kind = event.type
    if kind == EventType.RUN_CREATED:
        changes.update(task=_copy(d.get("task", {})), created_at=event.at)
    elif kind == EventType.NODE_STARTED:
        changes["node"] = _str(d.get("node"))
        if state.status is RunStatus.QUEUED:
            changes["status"] = RunStatus.RUNNING
    elif kind == EventType.CHANGE_COMMITTED:
        changes.update(
            branch=_str(d.get("branch")),
            change_commit=_str(d.get("commit")),
            base_commit=_str(d.get("base")),
        )
    elif kind == EventType.GATE_FINISHED:
        phase, gate = str(d.get("phase", "change")), str(d.get("gate", "?"))
        # The latest result of a gate in a phase is the one that counts (fix cycles rerun gates).
        gates = {p: dict(by_gate) for p, by_gate in state.gates.items()}
        gates.setdefault(phase, {})[gate] = _copy(d)
        changes["gates"] = gates
    elif kind == EventType.DECISION_MADE:
        changes["decision"] = _copy(d)
    elif kind in (EventType.DELIVERY_MERGED, EventType.DELIVERY_STAGED):
        changes.update(
            delivered_target=_str(d.get("target")),
            delivered_commit=_str(d.get("commit")),
            branch=_str(d.get("branch")) or state.branch,
        )
    elif kind == EventType.REVIEW_REQUESTED:
        changes.update(
            review_status="requested",
            branch=_str(d.get("branch")) or state.branch,
            review_target=_str(d.get("target")),
            review_base=_str(d.get("base")) or state.review_base,
        )
    elif kind in (EventType.REVIEW_APPROVED, EventType.REVIEW_REJECTED):
        changes.update(
            review_status="approved" if kind == EventType.REVIEW_APPROVED else "rejected",
            reviewed_by=_str(d.get("by")),
            review_comment=_str(d.get("comment")),
        )
    elif kind == EventType.DELIVERY_INTENT:
        changes["pending_intent"] = _copy(d)
    elif kind == EventType.RUN_FAILED:
        changes["error"] = _str(d.get("error"))
    elif kind in (EventType.RUN_HALTED, EventType.RUN_NOOP):
        changes["reason"] = _str(d.get("reason"))
    if kind in _SETTLES_INTENT:
        changes["pending_intent"] = None
    after = _STATUS_AFTER.get(kind)
    # A run being rolled out was merged: only its rollout's own events move it on from there.
    if after is not None and not state.finished and state.status not in _ROLLING:
        changes["status"] = after
    started = kind == EventType.ROLLOUT_STARTED and state.status is RunStatus.MERGED
    if started or (kind.startswith("rollout.") and state.rollout is not None):
        changes["rollout"] = _rollout_summary(state.rollout, kind, d)
    if kind in _ROLLOUT_STATUS:
        allowed, moved = _ROLLOUT_STATUS[kind]
        if state.status in allowed:
            changes["status"] = moved
        if kind == EventType.ROLLOUT_STOPPED:
            changes["reason"] = _str(d.get("reason"))
    return replace(state, **changes)


def _rollout_summary(before: dict[str, Any] | None, kind: str, d: dict[str, Any]) -> dict[str, Any]:
    """The few facts about a rollout that lists and summaries show."""
    out = dict(before or {})
    if kind == EventType.ROLLOUT_STARTED:
        out = {"stage": 0, "percent": 0.0, "target": d.get("target"), "commit": d.get("commit")}
    elif kind == EventType.ROLLOUT_BASELINE:
        out["baseline"] = d.get("value")
    elif kind == EventType.ROLLOUT_STAGE and d.get("ok"):
        out.update(stage=d.get("stage"), percent=d.get("percent"))
    elif kind == EventType.ROLLOUT_CHECK:
        out["last_value"] = d.get("value")
    elif kind in (EventType.ROLLOUT_BREACHED, EventType.ROLLOUT_STOPPED):
        out["reason"] = d.get("reason")
    elif kind == EventType.ROLLOUT_REVERTED:
        out.update(
            revert_commit=d.get("revert_commit"),
            seconds_to_revert=d.get("seconds_to_revert"),
            manual=bool(d.get("manual")),
        )
    elif kind == EventType.ROLLOUT_RESUMED:
        out.pop("reason", None)
    return out


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _copy(value: Any) -> Any:
    # States must not share mutable data with the events they came from, or with each other.
    return copy.deepcopy(value)


__all__ = ["Event", "EventType", "RunState", "apply", "fold"]
