"""The rollout's next step as a pure function of its recorded events and the time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.config import RolloutConfig
from shipyard.events import Event, EventType, fold
from shipyard.model import RunStatus
from shipyard.rollout.plan import (
    Baseline,
    Check,
    Complete,
    Deploy,
    Revert,
    Wait,
    next_step,
    progress,
)

T0 = 1_000_000.0
CONFIG = RolloutConfig.model_validate(
    {
        "enabled": True,
        "stages": [10, 50, 100],
        "stage_seconds": 60,
        "watch_seconds": 600,
        "baseline_seconds": 300,
        "check_interval_seconds": 10,
        "threshold_points": 1.0,
        "health": {"command": ["true"]},
    }
)


class Record:
    """A run's events, built the way the runner records them."""

    def __init__(self, config: RolloutConfig = CONFIG) -> None:
        self.events: list[Event] = []
        self.add(EventType.RUN_CREATED, task={"repo": "/r", "blueprint": "deps"})
        self.add(EventType.DELIVERY_MERGED, target="main", commit="m1", branch="b")
        self.add(EventType.ROLLOUT_STARTED, target="main", commit="m1", previous_commit="p0",
                 merged_at=T0, config=config.model_dump(mode="json"))  # fmt: skip

    def add(self, kind: EventType, **data: Any) -> Record:
        at = datetime.fromtimestamp(T0, UTC)
        self.events.append(Event(run_id="r1", seq=len(self.events) + 1, type=kind.value, at=at,
                                 data=data))  # fmt: skip
        return self

    def baseline(self, value: float = 0.5) -> Record:
        return self.add(EventType.ROLLOUT_BASELINE, value=value, start=T0 - 300, end=T0)

    def stage(self, n: int, at: float, ok: bool = True) -> Record:
        return self.add(EventType.ROLLOUT_STAGE, stage=n, percent=CONFIG.stages[n - 1], ok=ok,
                        at=at, detail="", seconds=0.1)  # fmt: skip

    def check(self, value: float, at: float) -> Record:
        return self.add(EventType.ROLLOUT_CHECK, value=value, at=at, breach=value > 1.5)

    def step(self, now: float) -> object:
        p = progress(self.events)
        assert p is not None
        return next_step(p, now)


def test_a_rollout_starts_with_the_baseline_window_before_the_merge() -> None:
    assert Record().step(T0) == Baseline(start=T0 - 300, end=T0)
    assert Record().baseline().step(T0 + 1) == Deploy(stage=1, percent=10.0)


def test_each_stage_is_checked_at_once_then_every_interval() -> None:
    r = Record().baseline().stage(1, at=T0 + 1)
    assert r.step(T0 + 1) == Check()
    r.check(0.6, at=T0 + 2)
    assert r.step(T0 + 3) == Wait(until=T0 + 12)
    assert r.step(T0 + 12) == Check()


def test_a_stage_is_held_for_its_time_and_needs_a_healthy_reading() -> None:
    r = Record().baseline().stage(1, at=T0)
    r.check(0.6, at=T0)
    for t in range(10, 60, 10):
        r.check(0.7, at=T0 + t)
    assert isinstance(r.step(T0 + 59), Wait)
    r.check(0.7, at=T0 + 60)
    assert r.step(T0 + 60) == Deploy(stage=2, percent=50.0)
    # A new stage starts unproven: its first reading comes before anything else.
    r.stage(2, at=T0 + 61)
    assert r.step(T0 + 61) == Check()


def test_a_reading_above_baseline_plus_threshold_reverts() -> None:
    r = Record().baseline(0.5).stage(1, at=T0)
    r.check(1.5, at=T0 + 1)  # exactly baseline + 1 point: healthy
    assert not isinstance(r.step(T0 + 2), Revert)
    r.check(1.51, at=T0 + 11)
    step = r.step(T0 + 12)
    assert isinstance(step, Revert)
    assert "1.51 is above the baseline 0.50 + 1 points at 10 % of traffic" in step.reason


def test_consecutive_breaches_can_be_required() -> None:
    two = CONFIG.model_copy(update={"consecutive_breaches": 2})
    r = Record(two).baseline(0.5).stage(1, at=T0)
    r.check(9.0, at=T0 + 1)
    assert not isinstance(r.step(T0 + 2), Revert)
    r.check(0.5, at=T0 + 11)  # a healthy reading resets the count
    r.check(9.0, at=T0 + 21)
    assert not isinstance(r.step(T0 + 22), Revert)
    r.check(9.0, at=T0 + 31)
    assert isinstance(r.step(T0 + 32), Revert)


def test_after_the_last_stage_the_watch_window_runs_from_the_merge() -> None:
    r = Record().baseline().stage(1, at=T0)
    r.check(0.5, at=T0 + 60).stage(2, at=T0 + 60).check(0.5, at=T0 + 120)
    r.stage(3, at=T0 + 120).check(0.5, at=T0 + 180)
    assert r.step(T0 + 185) == Wait(until=T0 + 190)
    for t in range(190, 600, 10):
        r.check(0.5, at=T0 + t)
    r.check(0.5, at=T0 + 600)
    assert r.step(T0 + 600) == Complete()


def test_a_breach_is_reverted_even_after_the_stages_and_an_outcome_ends_it() -> None:
    r = Record().baseline().stage(1, at=T0).stage(2, at=T0).stage(3, at=T0)
    r.check(5.0, at=T0 + 1)
    assert isinstance(r.step(T0 + 2), Revert)
    # Once the breach is recorded, the revert stays due until it is done (a crash resumes it).
    r.add(EventType.ROLLOUT_BREACHED, at=T0 + 2, reason="x")
    assert isinstance(r.step(T0 + 1000), Revert)
    r.add(EventType.ROLLOUT_REVERTED, revert_commit="rv", seconds_to_revert=3.0)
    assert r.step(T0 + 1000) is None


def test_a_failed_deploy_does_not_count_as_a_stage() -> None:
    r = Record().baseline().stage(1, at=T0, ok=False)
    assert r.step(T0 + 1) == Deploy(stage=1, percent=10.0)


def test_statuses_follow_the_rollout() -> None:
    r = Record()
    assert fold(r.events).status is RunStatus.ROLLING_OUT
    r.add(EventType.ROLLOUT_STOPPED, reason="unreadable")
    state = fold(r.events)
    assert state.status is RunStatus.ROLLOUT_STOPPED
    assert not state.finished
    assert state.rollout is not None
    assert state.rollout["reason"] == "unreadable"
    r.add(EventType.ROLLOUT_RESUMED, by="ana")
    assert fold(r.events).status is RunStatus.ROLLING_OUT
    assert fold(Record().add(EventType.ROLLOUT_COMPLETED).events).status is RunStatus.MERGED
    rolled = fold(Record().add(EventType.ROLLOUT_REVERTED, revert_commit="rv").events)
    assert rolled.status is RunStatus.ROLLED_BACK
    assert rolled.finished


def test_a_run_without_a_rollout_has_no_progress() -> None:
    assert progress(Record().events[:2]) is None


@pytest.mark.parametrize("stages", [[5, 25, 90], [50, 25, 100], [0, 100], []])
def test_stages_must_rise_to_100(stages: list[float]) -> None:
    with pytest.raises(ValueError, match="stages"):
        RolloutConfig.model_validate({"enabled": True, "stages": stages,
                                      "health": {"command": ["true"]}})  # fmt: skip


def test_an_enabled_rollout_needs_a_health_source() -> None:
    with pytest.raises(ValueError, match="health source"):
        RolloutConfig.model_validate({"enabled": True})


@given(
    readings=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=30),
    baseline=st.floats(min_value=0, max_value=50, allow_nan=False),
)
def test_no_reading_above_the_threshold_ever_lets_a_stage_advance_past_it(
    readings: list[float], baseline: float
) -> None:
    r = Record().baseline(baseline).stage(1, at=T0)
    for i, value in enumerate(readings):
        r.check(value, at=T0 + 10 * i)
        step = r.step(T0 + 10 * i + 1000)
        if value > baseline + 1.0:
            assert isinstance(step, Revert)
            return
        assert not isinstance(step, Revert)
