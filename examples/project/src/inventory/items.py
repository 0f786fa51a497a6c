"""Items for sale: a name, a unique SKU derived from it, and a unit price in cents."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from slugkit import slugify, unique_slug


@dataclass(frozen=True)
class Item:
    sku: str
    name: str
    unit_price: int
    """Price of one unit in cents (minor units of ``currency``)."""
    currency: str = "EUR"


def new_item(
    name: str, unit_price: int, *, currency: str = "EUR", taken: Collection[str] = ()
) -> Item:
    """An item whose SKU is the slug of its name, made unique against the SKUs in ``taken``."""
    if not slugify(name):
        raise ValueError(f"an item needs a name with letters or digits, not {name!r}")
    if unit_price < 0:
        raise ValueError("a unit price cannot be negative")
    return Item(sku=unique_slug(name, taken), name=name, unit_price=unit_price, currency=currency)
