"""What a model call cost, from the usage the provider reported and the configured prices.

Prices are configuration (``[agent.prices]``), never built in: list prices change and self-hosted
models are free. A model without a price therefore costs 0, which is what the money budget
(``agent.max_cost_usd``) assumes for it too.
"""

from __future__ import annotations

from collections.abc import Mapping

from shipyard.agent.messages import Usage
from shipyard.config import PriceConfig

_MILLION = 1_000_000


def cost(usage: Usage, model: str, prices: Mapping[str, PriceConfig]) -> float:
    """US dollars for one call; 0.0 for a model with no configured price.

    ``usage.input_tokens`` counts every prompt token, cached ones included (providers normalise to
    this); the ``cached_input_tokens`` among them are charged at ``cached_input_per_million`` when
    it is set, at the input price otherwise.
    """
    price = prices.get(model)
    if price is None:
        return 0.0
    cached = min(max(usage.cached_input_tokens, 0), max(usage.input_tokens, 0))
    fresh = max(usage.input_tokens, 0) - cached
    cached_price = (
        price.input_per_million
        if price.cached_input_per_million is None
        else price.cached_input_per_million
    )
    dollars = (
        fresh * price.input_per_million
        + cached * cached_price
        + max(usage.output_tokens, 0) * price.output_per_million
    )
    return dollars / _MILLION
