"""Rollback rate, post-merge defects and time to recover, counted from runs' recorded states."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shipyard.events import Event, EventType, RunState, fold
from shipyard.rollout.stats import rollout_stats


def run(run_id: str, *events: tuple[EventType, dict[str, Any]]) -> RunState:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    base = [(EventType.RUN_CREATED, {"task": {}}), (EventType.DELIVERY_MERGED, {"commit": "m"})]
    return fold(
        Event(run_id=run_id, seq=i + 1, type=kind.value, at=at, data=data)
        for i, (kind, data) in enumerate([*base, *events])
    )


STARTED = (EventType.ROLLOUT_STARTED, {"target": "main", "commit": "m"})


def test_outcomes_are_counted_and_time_to_recover_averaged() -> None:
    states = [
        run("a", STARTED, (EventType.ROLLOUT_COMPLETED, {})),
        run("b", STARTED, (EventType.ROLLOUT_COMPLETED, {})),
        run("c", STARTED, (EventType.ROLLOUT_REVERTED, {"seconds_to_revert": 30.0})),
        run("d", STARTED, (EventType.ROLLOUT_REVERTED, {"seconds_to_revert": 90.0})),
        run("e", STARTED, (EventType.ROLLOUT_REVERTED, {"seconds_to_revert": 600.0})),
        run("f", STARTED),
        run("g", STARTED, (EventType.ROLLOUT_STOPPED, {"reason": "no data"})),
        run("h"),  # merged without a rollout: not counted
    ]
    stats = rollout_stats(states)
    assert (stats.rollouts, stats.completed, stats.rolled_back) == (7, 2, 3)
    assert (stats.under_way, stats.stopped) == (1, 1)
    assert stats.rollback_rate == pytest.approx(3 / 5)
    assert stats.mttr_seconds == pytest.approx(240.0)
    assert stats.median_ttr_seconds == pytest.approx(90.0)


def test_no_settled_rollout_has_no_rate() -> None:
    stats = rollout_stats([run("a", STARTED), run("b")])
    assert stats.rollback_rate is None
    assert stats.mttr_seconds is None
    assert stats.rollouts == 1
