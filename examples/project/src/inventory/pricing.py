"""Prices as people read them, and back."""

from __future__ import annotations

from moneyfmt import format_money, parse_money

from inventory.items import Item
from inventory.stock import Stock


def price_label(item: Item) -> str:
    """The unit price with its currency symbol, e.g. ``"€12.50"``."""
    return format_money(item.unit_price, item.currency)


def stock_value_label(stock: Stock, currency: str = "EUR") -> str:
    """The value of everything in stock, e.g. ``"€1,250.00"``."""
    return format_money(stock.value(), currency)


def parse_price(text: str, currency: str = "EUR") -> int:
    """A price typed by a person (``"€12.50"``) in cents."""
    return parse_money(text, currency)
