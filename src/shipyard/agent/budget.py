"""Bounded effort: an agent's steps, tokens, money and wall time, checked before every model call.

Spend is counted from what providers report, never estimated (DESIGN invariant 6). The arithmetic is
pure; only the clock is an effect, and tests inject their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.agent.pricing import cost
from shipyard.errors import ShipyardError

if TYPE_CHECKING:
    from shipyard.agent.messages import Completion
    from shipyard.config import AgentConfig


@dataclass(frozen=True, kw_only=True)
class Spend:
    """Steps (model calls), tokens (input and output), US dollars and wall seconds."""

    steps: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def as_event(self) -> dict[str, Any]:
        """The data of an ``agent.spend`` event."""
        return {
            "steps": self.steps,
            "tokens": self.tokens,
            "cost_usd": round(self.cost_usd, 6),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Spend:
        """The spend an ``agent.spend`` event recorded, to carry it across a resumed run."""
        return cls(
            steps=int(data["steps"]),
            tokens=int(data["tokens"]),
            cost_usd=float(data["cost_usd"]),
            seconds=float(data["seconds"]),
        )


# The limit's name in messages, the Spend field, and the setting that raises it.
_LIMITS = (
    ("steps", "steps", "agent.max_steps"),
    ("tokens", "tokens", "agent.max_tokens"),
    ("cost", "cost_usd", "agent.max_cost_usd"),
    ("wall time", "seconds", "agent.max_wall_seconds"),
)


class BudgetExceeded(ShipyardError):
    """A budget ran out; the agent stops before the next model call."""

    exit_code = 12

    def __init__(self, limit: str, setting: str, spent: Spend, allowed: Spend) -> None:
        field = {name: attr for name, attr, _ in _LIMITS}[limit]
        used, cap = getattr(spent, field), getattr(allowed, field)
        super().__init__(
            f"The agent's {limit} budget is used up: {_show(field, used)} of {_show(field, cap)} "
            f"(spent so far: {_describe(spent)}). The agent stopped before its next model call; "
            f"raise {setting} in shipyard.toml or give it a smaller task."
        )
        self.limit = limit
        self.setting = setting
        self.spent = spent
        self.allowed = allowed


class Budget:
    """What one agent may still spend. ``check`` before each model call, ``charge`` after it.

    ``prior`` carries the spend of an earlier attempt of the same node, so a resumed run does not
    get its budget afresh.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        prior: Spend | None = None,
    ) -> None:
        self.limits = Spend(
            steps=config.max_steps,
            tokens=config.max_tokens,
            cost_usd=config.max_cost_usd,
            seconds=config.max_wall_seconds,
        )
        self._prices = config.prices
        self._clock = clock
        self._started = clock()
        prior = prior or Spend()
        self._steps, self._tokens, self._cost = prior.steps, prior.tokens, prior.cost_usd
        self._prior_seconds = prior.seconds

    def charge(self, completion: Completion) -> Spend:
        """Count one model call; returns the spend so far."""
        self._steps += 1
        self._tokens += completion.usage.total
        # A provider that priced the call is trusted; otherwise the configured prices apply.
        self._cost += completion.cost_usd or cost(completion.usage, completion.model, self._prices)
        return self.spent()

    def spent(self) -> Spend:
        return Spend(
            steps=self._steps,
            tokens=self._tokens,
            cost_usd=self._cost,
            seconds=self._prior_seconds + max(self._clock() - self._started, 0.0),
        )

    def exceeded(self) -> str | None:
        """The first limit reached (``steps``, ``tokens``, ``cost``, ``wall time``), or None.

        A limit is reached when the spend is at or past it; free calls never reach a money limit
        of 0, which therefore means "free models only".
        """
        return _reached(self.spent(), self.limits)

    def check(self) -> None:
        """Raise ``BudgetExceeded`` when any limit is reached; call before each model call."""
        spent = self.spent()
        limit = _reached(spent, self.limits)
        if limit is not None:
            setting = next(s for name, _, s in _LIMITS if name == limit)
            raise BudgetExceeded(limit, setting, spent, self.limits)

    def remaining(self) -> Spend:
        """What is left of each limit (never below 0), for display."""
        spent = self.spent()
        return Spend(
            steps=max(self.limits.steps - spent.steps, 0),
            tokens=max(self.limits.tokens - spent.tokens, 0),
            cost_usd=max(self.limits.cost_usd - spent.cost_usd, 0.0),
            seconds=max(self.limits.seconds - spent.seconds, 0.0),
        )


def _reached(spent: Spend, limits: Spend) -> str | None:
    for name, field, _ in _LIMITS:
        used, cap = getattr(spent, field), getattr(limits, field)
        if used >= cap and not (field == "cost_usd" and used == 0):
            return str(name)
    return None


def _show(field: str, value: float) -> str:
    if field == "cost_usd":
        return f"${value:.4f}"
    if field == "seconds":
        return f"{value:.0f} s"
    return f"{int(value):,}"


def _describe(spent: Spend) -> str:
    return ", ".join(f"{name} {_show(field, getattr(spent, field))}" for name, field, _ in _LIMITS)
