"""Budgets stop the agent before the model call that would go past any of the four limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipyard.agent.budget import Budget, BudgetExceeded, Spend
from shipyard.agent.messages import Completion, Message, Usage
from shipyard.config import AgentConfig, PriceConfig
from shipyard.errors import ShipyardError


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def call(
    input_tokens: int = 100, output_tokens: int = 20, cost_usd: float = 0.0, model: str = "m"
) -> Completion:
    return Completion(
        message=Message(role="assistant", content="ok"),
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model=model,
        cost_usd=cost_usd,
    )


def test_steps_stop_before_the_call_past_max_steps() -> None:
    budget = Budget(AgentConfig(max_steps=2), clock=Clock())
    budget.check()
    budget.charge(call())
    budget.check()
    budget.charge(call())
    with pytest.raises(BudgetExceeded) as caught:
        budget.check()
    error = caught.value
    assert isinstance(error, ShipyardError)
    assert error.limit == "steps"
    assert error.setting == "agent.max_steps"
    assert "steps budget is used up: 2 of 2" in str(error)
    assert "raise agent.max_steps" in str(error)
    assert error.spent.steps == 2


def test_tokens_count_input_and_output_as_reported() -> None:
    budget = Budget(AgentConfig(max_tokens=1000), clock=Clock())
    budget.charge(call(input_tokens=500, output_tokens=100))
    budget.check()
    budget.charge(call(input_tokens=350, output_tokens=150))
    with pytest.raises(BudgetExceeded, match=r"tokens budget is used up: 1,100 of 1,000") as caught:
        budget.check()
    assert caught.value.limit == "tokens"
    assert "agent.max_tokens" in str(caught.value)


def test_money_counts_the_providers_price_or_else_the_configured_one() -> None:
    prices = {"paid": PriceConfig(input_per_million=1000.0, output_per_million=1000.0)}
    budget = Budget(AgentConfig(max_cost_usd=0.5, prices=prices), clock=Clock())
    budget.charge(call(cost_usd=0.3, model="free"))
    budget.check()
    budget.charge(call(input_tokens=150, output_tokens=50, model="paid"))  # 200 tokens: $0.20
    assert budget.spent().cost_usd == pytest.approx(0.5)
    with pytest.raises(BudgetExceeded, match=r"cost budget is used up: \$0\.5000 of \$0\.5000"):
        budget.check()


def test_wall_time_is_measured_by_the_clock() -> None:
    clock = Clock()
    budget = Budget(AgentConfig(max_wall_seconds=60), clock=clock)
    clock.now += 59
    budget.check()
    assert budget.remaining().seconds == pytest.approx(1)
    clock.now += 2
    with pytest.raises(
        BudgetExceeded, match=r"wall time budget is used up: 61 s of 60 s"
    ) as caught:
        budget.check()
    assert caught.value.setting == "agent.max_wall_seconds"


def test_a_money_limit_of_zero_allows_free_models_only() -> None:
    budget = Budget(AgentConfig(max_cost_usd=0), clock=Clock())
    for _ in range(3):
        budget.check()
        budget.charge(call(cost_usd=0.0))
    budget.charge(call(cost_usd=0.0001))
    with pytest.raises(BudgetExceeded, match="cost budget"):
        budget.check()


def test_remaining_never_goes_below_zero() -> None:
    clock = Clock()
    budget = Budget(AgentConfig(max_steps=3, max_tokens=1000, max_cost_usd=1.0), clock=clock)
    budget.charge(call(input_tokens=700, output_tokens=100, cost_usd=0.25))
    assert budget.remaining() == Spend(steps=2, tokens=200, cost_usd=0.75, seconds=1800.0)
    budget.charge(call(input_tokens=900, output_tokens=0, cost_usd=2.0))
    clock.now += 5000
    assert budget.remaining() == Spend(steps=1, tokens=0, cost_usd=0.0, seconds=0.0)


def test_a_resumed_run_keeps_what_it_spent_before() -> None:
    clock = Clock()
    first = Budget(AgentConfig(max_steps=3), clock=clock)
    first.charge(call(cost_usd=0.01))
    first.charge(call(cost_usd=0.01))
    clock.now += 30
    event = first.spent().as_event()
    assert event == {"steps": 2, "tokens": 240, "cost_usd": 0.02, "seconds": 30.0}

    resumed = Budget(AgentConfig(max_steps=3), clock=clock, prior=Spend.from_event(event))
    clock.now += 10
    assert resumed.spent() == Spend(steps=2, tokens=240, cost_usd=0.02, seconds=40.0)
    resumed.charge(call())
    with pytest.raises(BudgetExceeded, match="steps budget is used up: 3 of 3"):
        resumed.check()


charges = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5000),
        st.floats(min_value=0, max_value=1, allow_nan=False),
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=12,
)


@given(charges=charges)
def test_check_fails_exactly_when_a_limit_is_reached(
    charges: list[tuple[int, float, float]],
) -> None:
    config = AgentConfig(max_steps=10, max_tokens=20_000, max_cost_usd=2.0, max_wall_seconds=300)
    clock = Clock()
    budget = Budget(config, clock=clock)
    for tokens, cost, seconds in charges:
        budget.charge(call(input_tokens=tokens, output_tokens=0, cost_usd=cost))
        clock.now += seconds
    spent = budget.spent()
    reached = (
        spent.steps >= 10 or spent.tokens >= 20_000 or spent.cost_usd >= 2.0 or spent.seconds >= 300
    )
    assert (budget.exceeded() is not None) == reached
    if reached:
        with pytest.raises(BudgetExceeded):
            budget.check()
    else:
        budget.check()
