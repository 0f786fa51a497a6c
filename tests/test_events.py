"""The event vocabulary and the pure fold from a run's events to its state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shipyard.events import Event, EventType, RunState, apply, fold
from shipyard.model import RunStatus

START = datetime(2026, 11, 25, 5, 51, tzinfo=UTC)
TASK = {"blueprint": "deps", "repo": "/srv/app", "params": {}, "title": "t"}


def run(*steps: tuple[str, dict[str, Any]], run_id: str = "r1") -> list[Event]:
    """A run.created event followed by ``steps``, one second apart."""
    kinds = [(EventType.RUN_CREATED.value, {"task": TASK}), *steps]
    return [
        Event(run_id=run_id, seq=n, type=str(kind), at=START + timedelta(seconds=n), data=data)
        for n, (kind, data) in enumerate(kinds, start=1)
    ]


def test_the_vocabulary_is_the_documented_one() -> None:
    assert {t.value for t in EventType} == {
        "run.created",
        "node.started",
        "node.finished",
        "node.failed",
        "change.committed",
        "change.classified",
        "gate.finished",
        "tests.flaky",
        "decision.made",
        "delivery.intent",
        "delivery.merged",
        "delivery.staged",
        "review.requested",
        "review.approved",
        "review.rejected",
        "run.halted",
        "run.failed",
        "run.noop",
        "agent.started",
        "agent.step",
        "agent.tool",
        "agent.compacted",
        "agent.finished",
        "agent.egress",
        "rollout.started",
        "rollout.baseline",
        "rollout.stage",
        "rollout.check",
        "rollout.breached",
        "rollout.reverted",
        "rollout.completed",
        "rollout.stopped",
        "rollout.resumed",
        "deps.updates",
        "deps.risk",
        "log",
    }


def test_a_created_run_is_queued_and_a_started_one_running() -> None:
    created = fold(run())
    assert (created.status, created.task, created.last_seq) == (RunStatus.QUEUED, TASK, 1)
    assert created.created_at == created.updated_at == START + timedelta(seconds=1)
    started = fold(run(("node.started", {"node": "prepare"})))
    assert (started.status, started.node) == (RunStatus.RUNNING, "prepare")
    assert not started.finished


def test_a_merged_run_carries_its_change_decision_and_delivery() -> None:
    decision = {
        "action": "MERGE",
        "reasons": [{"rule": "type", "action": "MERGE", "message": "dependency update"}],
        "inputs": {"files": 1},
        "policy": "seed",
    }
    state = fold(
        run(
            ("node.started", {"node": "change"}),
            ("change.committed", {"branch": "shipyard/r1", "commit": "c1", "base": "b0"}),
            ("gate.finished", {"gate": "tests", "phase": "baseline", "passed": True}),
            ("gate.finished", {"gate": "tests", "phase": "change", "passed": False}),
            ("gate.finished", {"gate": "tests", "phase": "change", "passed": True}),
            ("decision.made", decision),
            ("delivery.merged", {"target": "main", "commit": "m1", "branch": "shipyard/r1"}),
        )
    )
    assert state.status is RunStatus.MERGED
    assert state.finished
    assert (state.branch, state.base_commit, state.change_commit) == ("shipyard/r1", "b0", "c1")
    assert state.decision == decision
    assert state.action == "MERGE"
    # The latest result of a gate in a phase counts: the fix cycle's rerun passed.
    assert state.gates["change"]["tests"]["passed"] is True
    assert state.gates["baseline"]["tests"]["passed"] is True
    assert (state.delivered_target, state.delivered_commit) == ("main", "m1")


def test_staged_halted_failed_and_noop_runs() -> None:
    staged = fold(run(("delivery.staged", {"target": "staging", "commit": "s1", "branch": "b"})))
    assert (staged.status, staged.delivered_target) == (RunStatus.STAGED, "staging")
    halted = fold(run(("run.halted", {"reason": "forbidden path src/auth/x.py"})))
    assert (halted.status, halted.reason) == (RunStatus.HALTED, "forbidden path src/auth/x.py")
    failed = fold(
        run(("node.failed", {"node": "gates", "error": "x"}), ("run.failed", {"error": "x"}))
    )
    assert (failed.status, failed.error) == (RunStatus.FAILED, "x")
    noop = fold(run(("run.noop", {"reason": "already up to date"})))
    assert (noop.status, noop.reason) == (RunStatus.NOOP, "already up to date")


def test_review_requested_then_approved_and_merged() -> None:
    events = run(
        ("node.started", {"node": "deliver"}),
        ("review.requested", {"branch": "shipyard/r1", "target": "main"}),
        ("node.started", {"node": "report"}),  # nodes after delivery leave the review waiting
        ("log", {"message": "report written"}),
    )
    waiting = fold(events)
    assert waiting.status is RunStatus.AWAITING_REVIEW
    assert (waiting.review_status, waiting.branch, waiting.review_target) == (
        "requested",
        "shipyard/r1",
        "main",
    )
    approved = fold([*events, *run(("review.approved", {"by": "ana", "comment": "ok"}))[1:]])
    assert approved.status is RunStatus.AWAITING_REVIEW  # until the merge is done
    assert (approved.review_status, approved.reviewed_by, approved.review_comment) == (
        "approved",
        "ana",
        "ok",
    )
    merged = apply(
        approved,
        Event(run_id="r1", seq=9, type="delivery.merged", at=START, data={"target": "main"}),
    )
    assert merged.status is RunStatus.MERGED
    assert merged.reviewed_by == "ana"


def test_review_rejected() -> None:
    state = fold(
        run(
            ("review.requested", {"branch": "shipyard/r1"}),
            ("review.rejected", {"by": "bo", "comment": "not now"}),
        )
    )
    assert (state.status, state.review_status, state.reviewed_by) == (
        RunStatus.REJECTED,
        "rejected",
        "bo",
    )


def test_a_finished_status_stays_whatever_follows() -> None:
    state = fold(
        run(
            ("delivery.merged", {"target": "main", "commit": "m1"}),
            ("node.started", {"node": "report"}),
            ("run.failed", {"error": "report could not be written"}),
        )
    )
    assert state.status is RunStatus.MERGED
    assert state.error == "report could not be written"  # recorded, but the merge still happened


def test_unknown_event_types_only_move_the_clock() -> None:
    before = fold(run())
    after = fold(run(("agent.thought", {"text": "hm"})))
    assert after.status is before.status
    assert (after.last_seq, after.updated_at) == (2, START + timedelta(seconds=2))


def test_fold_needs_events_of_one_run() -> None:
    with pytest.raises(ValueError, match=r"run\.created"):
        fold([])
    with pytest.raises(ValueError, match="run r2"):
        fold([*run(), *run(run_id="r2")])


def test_a_state_shares_nothing_with_its_events() -> None:
    events = run(("gate.finished", {"gate": "tests", "phase": "change", "facts": {"failed": []}}))
    state = fold(events)
    events[0].data["task"]["title"] = "changed"
    events[1].data["facts"]["failed"].append("test_x")
    assert state.task["title"] == "t"
    assert state.gates["change"]["tests"]["facts"] == {"failed": []}


# --- properties -------------------------------------------------------------------------------

_text = st.text(max_size=6)
_keys = st.sampled_from(
    [
        "node",
        "branch",
        "commit",
        "base",
        "target",
        "gate",
        "phase",
        "passed",
        "reason",
        "error",
        "by",
    ]
)
_data = st.dictionaries(
    _keys, st.one_of(st.none(), _text, st.integers(), st.booleans()), max_size=3
)
_steps = st.lists(
    st.tuples(st.sampled_from([*EventType, "something.else"]).map(str), _data), max_size=12
)


@settings(database=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(_steps)
def test_fold_is_deterministic_and_incremental(steps: list[tuple[str, dict[str, Any]]]) -> None:
    events = run(*steps)
    state = fold(events)
    assert fold(events) == state
    assert fold(iter(events)) == state
    assert reduce(apply, events, RunState(run_id="r1")) == state
    for cut in range(1, len(events)):
        assert reduce(apply, events[cut:], fold(events[:cut])) == state
    assert state.last_seq == len(events)


_finishing = st.sampled_from(
    [
        ("delivery.merged", {"target": "main", "commit": "m"}),
        ("delivery.staged", {"target": "staging", "commit": "s"}),
        ("review.rejected", {"by": "ana"}),
        ("run.halted", {"reason": "forbidden path"}),
        ("run.failed", {"error": "boom"}),
        ("run.noop", {"reason": "nothing to do"}),
    ]
)


@settings(database=None, max_examples=100)
@given(_steps, _finishing, st.lists(st.builds(lambda m: ("log", {"message": m}), _text)))
def test_log_events_do_not_change_a_finished_run(
    before: list[tuple[str, dict[str, Any]]],
    finishing: tuple[str, dict[str, Any]],
    logs: list[tuple[str, dict[str, Any]]],
) -> None:
    finished = fold(run(*before, finishing))
    assume(finished.status is not RunStatus.ROLLING_OUT)  # merged earlier, and being rolled out
    assert finished.finished
    later = fold(run(*before, finishing, *logs))
    assert later.status is finished.status
    assert later.finished


_not_rollout = st.lists(
    st.tuples(
        st.sampled_from([t for t in EventType if not t.startswith("rollout.")]).map(str), _data
    ),
    max_size=12,
)


@settings(database=None, max_examples=100)
@given(_steps, _finishing, _not_rollout)
def test_nothing_but_a_rollout_changes_a_finished_runs_status(
    before: list[tuple[str, dict[str, Any]]],
    finishing: tuple[str, dict[str, Any]],
    after: list[tuple[str, dict[str, Any]]],
) -> None:
    finished = fold(run(*before, finishing))
    assert fold(run(*before, finishing, *after)).status is finished.status


@settings(database=None, max_examples=100)
@given(_steps, _finishing, _steps)
def test_only_a_merge_is_rolled_out_or_back(
    before: list[tuple[str, dict[str, Any]]],
    finishing: tuple[str, dict[str, Any]],
    after: list[tuple[str, dict[str, Any]]],
) -> None:
    finished = fold(run(*before, finishing))
    later = fold(run(*before, finishing, *after)).status
    rollout = {RunStatus.ROLLING_OUT, RunStatus.ROLLED_BACK, RunStatus.ROLLOUT_STOPPED}
    if finished.status is RunStatus.MERGED:
        assert later in {RunStatus.MERGED, *rollout}
    else:  # a halted, failed, rejected or staged run is never rolled out, whatever is recorded
        assert later is finished.status


def test_a_delivery_intent_stays_pending_until_an_outcome_settles_it() -> None:
    intent = ("delivery.intent", {"action": "merge", "target": "main", "branch": "shipyard/r"})
    pending = fold(run(("node.started", {"node": "deliver"}), intent))
    assert pending.pending_intent is not None
    assert pending.pending_intent["target"] == "main"
    for outcome in ("delivery.merged", "review.requested", "run.halted", "run.failed"):
        settled = fold(run(("node.started", {"node": "deliver"}), intent, (outcome, {})))
        assert settled.pending_intent is None, outcome
    logged = fold(run(("node.started", {"node": "deliver"}), intent, ("log", {"message": "x"})))
    assert logged.pending_intent is not None
