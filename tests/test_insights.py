"""The seeds' metrics table, computed from runs' events: per type, per week, and overall."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.events import Event, EventType
from shipyard.insights import change_record, insights, week_of

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday

Step = tuple[EventType, dict[str, Any], float]  # kind, data, seconds after creation


def run(
    run_id: str, *steps: Step, at: datetime = MONDAY, change_type: str = "dependency_update"
) -> list[Event]:
    created = Event(
        run_id=run_id,
        seq=1,
        type=EventType.RUN_CREATED.value,
        at=at,
        data={"task": {"blueprint": "deps", "params": {"change_type": change_type}}},
    )
    return [
        created,
        *(
            Event(run_id=run_id, seq=i + 2, type=k.value, at=at + timedelta(seconds=s), data=d)
            for i, (k, d, s) in enumerate(steps)
        ),
    ]


def decided(action: str, *rules: tuple[str, str], after: float = 60) -> Step:
    reasons = [{"rule": rule, "action": act, "message": "m"} for rule, act in rules]
    return (EventType.DECISION_MADE, {"action": action, "reasons": reasons}, after)


def merged(after: float) -> Step:
    return (EventType.DELIVERY_MERGED, {"target": "main", "commit": "c"}, after)


def classified(kind: str) -> Step:
    return (EventType.CHANGE_CLASSIFIED, {"change_type": kind}, 30)


REVIEW = (EventType.REVIEW_REQUESTED, {"branch": "shipyard/x", "target": "main"}, 61)
APPROVED = (EventType.REVIEW_APPROVED, {"by": "bob"}, 3000)
ROLLOUT = (EventType.ROLLOUT_STARTED, {"target": "main", "commit": "c"}, 200)
COMPLETED = (EventType.ROLLOUT_COMPLETED, {}, 500)


def reverted(seconds: float) -> Step:
    return (EventType.ROLLOUT_REVERTED, {"seconds_to_revert": seconds}, 900)


def spend(kind: EventType, cost: float, tokens: int) -> Step:
    return (kind, {"spend": {"cost_usd": cost, "tokens": tokens}}, 10)


def test_types_rates_and_safety_numbers_follow_the_seed_table() -> None:
    runs = [
        # three dependency updates: two merged automatically, one halted by a failing gate
        run("d1", decided("MERGE"), merged(120), ROLLOUT, COMPLETED),
        run("d2", decided("MERGE"), merged(480), ROLLOUT, reverted(60)),
        run("d3", decided("HALT", ("quality.pass_rate", "HALT"))),
        # a feature reviewed and approved by a person: merged, but not automatically
        run("f1", classified("feature"), decided("REVIEW"), REVIEW, APPROVED, merged(3600)),
        # a halt by a guardrail is not a defect caught by a gate
        run("f2", classified("feature"), decided("HALT", ("paths.forbidden", "HALT"))),
        # a run that failed before any decision is no change at all
        run("x", (EventType.RUN_FAILED, {"error": "clone failed"}, 5)),
    ]
    result = insights(runs)
    assert result.runs == 6
    by_type = {row.change_type: row for row in result.types}
    assert [row.change_type for row in result.types] == ["dependency_update", "feature"]
    deps, feature = by_type["dependency_update"], by_type["feature"]
    assert (deps.changes, deps.auto_merged, deps.halted) == (3, 2, 1)
    assert deps.auto_merge_rate == pytest.approx(2 / 3)
    assert (feature.changes, feature.auto_merged, feature.reviewed) == (2, 0, 1)
    assert feature.review_rate == pytest.approx(0.5)
    s = result.summary
    assert s is not None
    assert (s.changes, s.merged, s.auto_merged) == (5, 3, 2)
    assert s.gate_halts == 1
    assert s.review_rate == pytest.approx(1 / 5)
    assert s.post_merge_defects == 1
    assert s.pre_merge_detection == pytest.approx(1 / 2)
    assert s.post_merge_defect_rate == pytest.approx(1 / 3)
    assert s.rollback_rate == pytest.approx(1 / 2)
    assert s.mean_seconds_to_merge == pytest.approx((120 + 480 + 3600) / 3)
    assert s.mttr_seconds == pytest.approx(60)


def test_weeks_run_from_first_to_last_with_empty_weeks_kept() -> None:
    runs = [
        run("a", decided("MERGE"), merged(60), at=MONDAY + timedelta(days=6, hours=14)),
        run("b", decided("MERGE"), merged(60), at=MONDAY + timedelta(days=1)),
        run("c", decided("REVIEW"), REVIEW, at=MONDAY + timedelta(weeks=2), change_type="refactor"),
    ]
    result = insights(runs)
    assert [w.week for w in result.weeks] == [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)]
    assert [w.changes for w in result.weeks] == [2, 0, 1]
    assert result.weeks[0].by_type == {"dependency_update": 2}
    assert result.weeks[2].by_type == {"refactor": 1}
    assert result.weeks[0].summary.auto_merge_rate == 1.0
    assert result.weeks[1].summary.auto_merge_rate is None
    assert result.types[0].per_week == pytest.approx(2 / 3)


def test_cost_adds_up_agent_sessions_and_divides_by_merged_changes() -> None:
    runs = [
        run(
            "a",
            (EventType.AGENT_STARTED, {}, 1),
            spend(EventType.AGENT_STEP, 0.01, 100),
            spend(EventType.AGENT_FINISHED, 0.03, 300),
            (EventType.AGENT_STARTED, {}, 20),  # a fix cycle: its spend starts again at zero
            spend(EventType.AGENT_STEP, 0.02, 50),
            decided("MERGE"),
            merged(90),
        ),
        run("b", decided("HALT", ("quality.coverage_delta", "HALT"))),
    ]
    record = change_record(runs[0])
    assert record.cost_usd == pytest.approx(0.05)
    assert record.tokens == 350
    s = insights(runs).summary
    assert s is not None
    assert s.cost_per_change == pytest.approx(0.05)  # over the one merged change
    assert s.total_tokens == 350


def test_nothing_recorded_gives_an_empty_table() -> None:
    result = insights([])
    assert (result.weeks, result.types, result.summary) == ([], [], None)
    s = insights([run("a", (EventType.RUN_NOOP, {"reason": "up to date"}, 3))]).summary
    assert s is not None
    assert s.changes == 0
    rates = (s.auto_merge_rate, s.cost_per_change, s.pre_merge_detection, s.post_merge_defect_rate)
    assert rates == (None, None, None, None)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_week_of_is_the_monday_on_or_before(moment: datetime) -> None:
    monday = week_of(moment)
    assert monday.weekday() == 0
    assert 0 <= (moment.date() - monday).days < 7
