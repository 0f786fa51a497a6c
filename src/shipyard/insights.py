"""Whether automation pays off: the seeds' table of change and safety metrics, from run events.

Pure: runs' events in, a weekly table out; no store, no clock. The dashboard's metrics page and
anything else that wants the numbers read them from here. Rollout outcomes (post-merge defects,
rollbacks, time to recover) come from ``shipyard.rollout.stats`` so both places count alike.

Definitions, as the metrics page states them:

- a **change** is a run that reached a policy decision (a verified commit); its **type** is the
  classified change type, else the one the task declared;
- **auto-merged**: decided MERGE and merged without a person's approval; **human review**: decided
  REVIEW; the rates are shares of the changes of that type;
- **defects caught before merge**: changes the policy halted because a quality gate failed
  (a ``quality.*`` rule that halts), i.e. gate halts;
- **post-merge defects**: merged changes rolled back afterwards (by a breach or by a person);
  pre-merge detection is caught / (caught + post-merge);
- **time to merge**: from the run's creation to its merge, review wait included;
- **MTTR**: from a rollout's breach to its revert landing (``rollout_stats``);
- **cost per change**: model spend of the runs over the changes that were merged.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shipyard.events import Event, EventType, RunState, fold
from shipyard.model import Action, RunStatus
from shipyard.rollout.stats import RolloutStats, rollout_stats

__all__ = [
    "ChangeRecord",
    "Insights",
    "Summary",
    "TypeRow",
    "WeekRow",
    "change_record",
    "insights",
    "week_of",
]


@dataclass(frozen=True, kw_only=True)
class ChangeRecord:
    """What one run contributes to the metrics."""

    state: RunState
    change_type: str
    action: str | None
    """The policy's last decision (None when the run never reached one: not a change)."""
    merged_at: datetime | None
    approved: bool
    gate_halt: bool
    cost_usd: float
    tokens: int

    @property
    def is_change(self) -> bool:
        return self.action is not None

    @property
    def merged(self) -> bool:
        return self.merged_at is not None

    @property
    def auto_merged(self) -> bool:
        return self.merged and self.action == Action.MERGE.value and not self.approved

    @property
    def rolled_back(self) -> bool:
        return self.state.status is RunStatus.ROLLED_BACK

    @property
    def seconds_to_merge(self) -> float | None:
        if self.merged_at is None or self.state.created_at is None:
            return None
        return (self.merged_at - self.state.created_at).total_seconds()


def change_record(events: Sequence[Event]) -> ChangeRecord:
    """Fold one run's events and pick out what the metrics count."""
    state = fold(events)
    change_type = str(state.task.get("params", {}).get("change_type") or "other")
    merged_at: datetime | None = None
    approved = False
    cost, tokens = 0.0, 0
    session: dict[str, Any] = {}
    for event in events:
        d = event.data
        if event.type == EventType.CHANGE_CLASSIFIED and d.get("change_type"):
            change_type = str(d["change_type"])
        elif event.type == EventType.DELIVERY_MERGED and merged_at is None:
            merged_at = event.at
        elif event.type == EventType.REVIEW_APPROVED:
            approved = True
        elif event.type == EventType.AGENT_STARTED:
            # Spend is cumulative within one agent session; a new session starts from zero.
            cost, tokens = cost + _num(session, "cost_usd"), tokens + int(_num(session, "tokens"))
            session = {}
        elif event.type in (EventType.AGENT_STEP, EventType.AGENT_FINISHED) and d.get("spend"):
            session = dict(d["spend"])
    cost += _num(session, "cost_usd")
    tokens += int(_num(session, "tokens"))
    return ChangeRecord(
        state=state,
        change_type=change_type,
        action=state.action,
        merged_at=merged_at,
        approved=approved,
        gate_halt=_gate_halt(state.decision),
        cost_usd=cost,
        tokens=tokens,
    )


def _gate_halt(decision: dict[str, Any] | None) -> bool:
    if not decision or decision.get("action") != Action.HALT.value:
        return False
    return any(
        str(r.get("rule", "")).startswith("quality.") and r.get("action") == Action.HALT.value
        for r in decision.get("reasons", [])
    )


def _num(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


@dataclass(frozen=True, kw_only=True)
class TypeRow:
    """One line of the seeds' first table: a change type's volume and how it was delivered."""

    change_type: str
    changes: int
    per_week: float
    auto_merged: int
    reviewed: int
    staged: int
    halted: int

    @property
    def auto_merge_rate(self) -> float | None:
        return _rate(self.auto_merged, self.changes)

    @property
    def review_rate(self) -> float | None:
        return _rate(self.reviewed, self.changes)


@dataclass(frozen=True, kw_only=True)
class Summary:
    """The seeds' second table: defects before and after merge, time to merge, MTTR, cost."""

    changes: int
    merged: int
    auto_merged: int
    reviewed: int
    gate_halts: int
    post_merge_defects: int
    mean_seconds_to_merge: float | None
    median_seconds_to_merge: float | None
    mttr_seconds: float | None
    total_cost_usd: float
    total_tokens: int
    rollouts: RolloutStats

    @property
    def auto_merge_rate(self) -> float | None:
        return _rate(self.auto_merged, self.changes)

    @property
    def review_rate(self) -> float | None:
        return _rate(self.reviewed, self.changes)

    @property
    def pre_merge_detection(self) -> float | None:
        return _rate(self.gate_halts, self.gate_halts + self.post_merge_defects)

    @property
    def post_merge_defect_rate(self) -> float | None:
        return _rate(self.post_merge_defects, self.merged)

    @property
    def rollback_rate(self) -> float | None:
        return self.rollouts.rollback_rate

    @property
    def cost_per_change(self) -> float | None:
        return None if self.merged == 0 else self.total_cost_usd / self.merged


@dataclass(frozen=True, kw_only=True)
class WeekRow:
    """One ISO week (starting Monday, UTC): the same numbers, for the charts over time."""

    week: date
    by_type: dict[str, int]
    summary: Summary

    @property
    def changes(self) -> int:
        return self.summary.changes


@dataclass(frozen=True, kw_only=True)
class Insights:
    weeks: list[WeekRow] = field(default_factory=list)
    """Every week from the first run's to the last run's, empty weeks included, oldest first."""
    types: list[TypeRow] = field(default_factory=list)
    """Change types by volume, largest first."""
    summary: Summary | None = None
    runs: int = 0


def week_of(moment: datetime) -> date:
    """The Monday that starts ``moment``'s ISO week."""
    day = moment.date()
    return day - timedelta(days=day.weekday())


def insights(runs: Iterable[Sequence[Event]]) -> Insights:
    """The metrics of the runs whose events are given (one sequence per run, in order)."""
    records = [change_record(events) for events in runs if events]
    if not records:
        return Insights()
    dated = [r for r in records if r.state.created_at is not None]
    by_week: dict[date, list[ChangeRecord]] = {}
    for record in dated:
        assert record.state.created_at is not None
        by_week.setdefault(week_of(record.state.created_at), []).append(record)
    weeks: list[WeekRow] = []
    if by_week:
        week, last = min(by_week), max(by_week)
        while week <= last:
            in_week = by_week.get(week, [])
            counts: dict[str, int] = {}
            for r in in_week:
                if r.is_change:
                    counts[r.change_type] = counts.get(r.change_type, 0) + 1
            weeks.append(WeekRow(week=week, by_type=counts, summary=_summary(in_week)))
            week += timedelta(weeks=1)
    span = max(len(weeks), 1)
    return Insights(
        weeks=weeks,
        types=_types(records, span),
        summary=_summary(records),
        runs=len(records),
    )


def _types(records: list[ChangeRecord], weeks: int) -> list[TypeRow]:
    grouped: dict[str, list[ChangeRecord]] = {}
    for r in records:
        if r.is_change:
            grouped.setdefault(r.change_type, []).append(r)
    rows = [
        TypeRow(
            change_type=kind,
            changes=len(rs),
            per_week=len(rs) / weeks,
            auto_merged=sum(r.auto_merged for r in rs),
            reviewed=sum(r.action == Action.REVIEW.value for r in rs),
            staged=sum(r.action == Action.STAGING_ONLY.value for r in rs),
            halted=sum(r.action == Action.HALT.value for r in rs),
        )
        for kind, rs in grouped.items()
    ]
    return sorted(rows, key=lambda row: (-row.changes, row.change_type))


def _summary(records: list[ChangeRecord]) -> Summary:
    times = [t for r in records if (t := r.seconds_to_merge) is not None]
    rollouts = rollout_stats(r.state for r in records)
    return Summary(
        changes=sum(r.is_change for r in records),
        merged=sum(r.merged for r in records),
        auto_merged=sum(r.auto_merged for r in records),
        reviewed=sum(r.action == Action.REVIEW.value for r in records),
        gate_halts=sum(r.gate_halt for r in records),
        post_merge_defects=rollouts.rolled_back,
        mean_seconds_to_merge=statistics.fmean(times) if times else None,
        median_seconds_to_merge=statistics.median(times) if times else None,
        mttr_seconds=rollouts.mttr_seconds,
        total_cost_usd=sum(r.cost_usd for r in records),
        total_tokens=sum(r.tokens for r in records),
        rollouts=rollouts,
    )


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole
