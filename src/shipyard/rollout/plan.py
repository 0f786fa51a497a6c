"""What a rollout does next: a pure function of its configuration, its recorded progress and the time.

The runner records every step as an event; ``progress`` folds those events into a ``Progress`` and
``next_step`` says what is due. Nothing here reads a clock, a file or the network, so the same
events and the same ``now`` always give the same step, and a runner that crashed resumes exactly
where the record says it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from shipyard.config import RolloutConfig
from shipyard.events import Event, EventType

Outcome = Literal["completed", "rolled_back", "stopped"]


@dataclass(frozen=True, kw_only=True)
class Progress:
    """A rollout as its events tell it."""

    config: RolloutConfig
    target: str
    commit: str
    previous_commit: str
    merged_at: float
    baseline: float | None = None
    stage: int = 0
    """Stages deployed so far (0: none yet)."""
    stage_started_at: float | None = None
    last_check_at: float | None = None
    healthy_since_stage: bool = False
    """Whether a reading since the current stage started was within the threshold."""
    breaches_in_a_row: int = 0
    last_value: float | None = None
    breached_at: float | None = None
    revert_started: bool = False
    manual: bool = False
    """The rollback was a person's (``rollout revert``), not a breach the watch saw."""
    revert_commit: str | None = None
    outcome: Outcome | None = None
    reason: str = ""
    readings: tuple[tuple[float, float], ...] = field(default=())
    """Every (time, value) read, for the report's plot."""

    @property
    def threshold(self) -> float | None:
        """The highest healthy value: baseline plus the configured points."""
        return None if self.baseline is None else self.baseline + self.points

    @property
    def points(self) -> float:
        """The threshold above the baseline (resolved from the policy when the rollout started)."""
        return 1.0 if self.config.threshold_points is None else self.config.threshold_points

    @property
    def percent(self) -> float:
        return self.config.stages[self.stage - 1] if self.stage else 0.0


@dataclass(frozen=True)
class Baseline:
    """Measure the health over the window before the merge."""

    start: float
    end: float


@dataclass(frozen=True)
class Deploy:
    """Call the deploy hook for stage ``stage`` (1-based) at ``percent``."""

    stage: int
    percent: float


@dataclass(frozen=True)
class Check:
    """Read the health signal now."""


@dataclass(frozen=True)
class Revert:
    """The signal breached: roll the deployment back and revert the merge."""

    reason: str


@dataclass(frozen=True)
class Complete:
    """Every stage held healthy through the watch window."""


@dataclass(frozen=True)
class Wait:
    """Nothing is due before ``until``."""

    until: float


Step = Baseline | Deploy | Check | Revert | Complete | Wait


def next_step(p: Progress, now: float) -> Step | None:
    """The one step due at ``now``, or None once the rollout has an outcome."""
    cfg = p.config
    if p.outcome is not None:
        return None
    if p.revert_started or p.breaches_in_a_row >= cfg.consecutive_breaches:
        return Revert(reason=_breach_reason(p))
    if p.baseline is None:
        return Baseline(start=p.merged_at - cfg.baseline_seconds, end=p.merged_at)
    if p.stage == 0:
        return Deploy(stage=1, percent=cfg.stages[0])
    assert p.stage_started_at is not None
    next_check = (p.last_check_at or p.stage_started_at) + cfg.check_interval_seconds
    if p.last_check_at is None or p.last_check_at < p.stage_started_at or now >= next_check:
        return Check()
    held_until = p.stage_started_at + cfg.stage_seconds
    if p.stage < len(cfg.stages):
        # Only on a healthy last reading: a stage never widens while the signal is breaching.
        if now >= held_until and p.healthy_since_stage and p.breaches_in_a_row == 0:
            return Deploy(stage=p.stage + 1, percent=cfg.stages[p.stage])
        return Wait(until=min(next_check, held_until) if now < held_until else next_check)
    watch_until = max(p.merged_at + cfg.watch_seconds, held_until)
    if now >= watch_until and p.healthy_since_stage and p.breaches_in_a_row == 0:
        return Complete()
    return Wait(until=min(next_check, watch_until) if now < watch_until else next_check)


def progress(events: Iterable[Event]) -> Progress | None:
    """The rollout recorded in a run's events, or None when none was started."""
    p: Progress | None = None
    for event in events:
        d = event.data
        kind = event.type
        if kind == EventType.ROLLOUT_STARTED:
            p = Progress(
                config=RolloutConfig.model_validate(d["config"]),
                target=str(d["target"]),
                commit=str(d["commit"]),
                previous_commit=str(d["previous_commit"]),
                merged_at=float(d["merged_at"]),
            )
        elif p is None:
            continue
        elif kind == EventType.ROLLOUT_BASELINE:
            p = replace(p, baseline=float(d["value"]))
        elif kind == EventType.ROLLOUT_STAGE and d.get("ok"):
            # Breaches in a row carry over: a new stage does not forgive the last readings.
            p = replace(
                p, stage=int(d["stage"]), stage_started_at=float(d["at"]), healthy_since_stage=False
            )
        elif kind == EventType.ROLLOUT_CHECK:
            p = _checked(p, d)
        elif kind == EventType.ROLLOUT_BREACHED:
            p = replace(
                p, revert_started=True, breached_at=float(d["at"]), manual=bool(d.get("manual"))
            )
        elif kind == EventType.ROLLOUT_REVERTED:
            p = replace(p, outcome="rolled_back", revert_commit=str(d.get("revert_commit") or ""))
        elif kind == EventType.ROLLOUT_COMPLETED:
            p = replace(p, outcome="completed")
        elif kind == EventType.ROLLOUT_STOPPED:
            p = replace(p, outcome="stopped", reason=str(d.get("reason", "")))
        elif kind == EventType.ROLLOUT_RESUMED:
            # A person looked at a stopped rollout and let it go on: readings start afresh.
            p = replace(p, outcome=None, reason="", breaches_in_a_row=0, last_check_at=None)
    return p


def _checked(p: Progress, d: dict[str, Any]) -> Progress:
    value, at = float(d["value"]), float(d["at"])
    breach = p.threshold is not None and value > p.threshold
    return replace(
        p,
        last_check_at=at,
        last_value=value,
        breaches_in_a_row=p.breaches_in_a_row + 1 if breach else 0,
        healthy_since_stage=p.healthy_since_stage or not breach,
        readings=(*p.readings, (at, value)),
    )


def is_breach(p: Progress, value: float) -> bool:
    """Whether ``value`` is above the baseline by more than the threshold."""
    return p.threshold is not None and value > p.threshold


def _breach_reason(p: Progress) -> str:
    if p.last_value is None or p.baseline is None:
        return "the health signal breached its threshold"
    return (
        f"health {p.last_value:.2f} is above the baseline {p.baseline:.2f} + "
        f"{p.points:g} points at {p.percent:g} % of traffic"
    )


__all__ = [
    "Baseline",
    "Check",
    "Complete",
    "Deploy",
    "Progress",
    "Revert",
    "Step",
    "Wait",
    "is_breach",
    "next_step",
    "progress",
]
