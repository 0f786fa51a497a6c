"""The numbers that say whether rollouts pay off: rollback rate, post-merge defects, time to recover."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from shipyard.events import RunState
from shipyard.model import RunStatus


@dataclass(frozen=True, kw_only=True)
class RolloutStats:
    rollouts: int
    """Merged changes that were rolled out (any outcome)."""
    completed: int
    rolled_back: int
    """Post-merge defects: changes reverted after their merge, by a breach or by a person."""
    under_way: int
    stopped: int
    mttr_seconds: float | None
    """Mean time from breach to the revert landing, over changes the watch rolled back."""
    median_ttr_seconds: float | None

    @property
    def rollback_rate(self) -> float | None:
        """Rolled back among the rollouts that reached an outcome (completed or rolled back)."""
        settled = self.completed + self.rolled_back
        return None if settled == 0 else self.rolled_back / settled


def rollout_stats(states: Iterable[RunState]) -> RolloutStats:
    """Count the rollouts among ``states`` (runs without one are ignored)."""
    with_rollout = [s for s in states if s.rollout is not None]
    by = {status: [s for s in with_rollout if s.status is status] for status in RunStatus}
    # A person's rollback has no breach to recover from: it counts as a defect, not in the time.
    times = [
        float(s.rollout["seconds_to_revert"])
        for s in by[RunStatus.ROLLED_BACK]
        if s.rollout
        and not s.rollout.get("manual")
        and isinstance(s.rollout.get("seconds_to_revert"), int | float)
    ]
    return RolloutStats(
        rollouts=len(with_rollout),
        completed=len(by[RunStatus.MERGED]),
        rolled_back=len(by[RunStatus.ROLLED_BACK]),
        under_way=len(by[RunStatus.ROLLING_OUT]),
        stopped=len(by[RunStatus.ROLLOUT_STOPPED]),
        mttr_seconds=statistics.fmean(times) if times else None,
        median_ttr_seconds=statistics.median(times) if times else None,
    )
