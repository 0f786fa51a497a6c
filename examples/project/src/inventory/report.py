"""A plain-text stock report, one line per item."""

from __future__ import annotations

from textcols import columns

from inventory.pricing import price_label, stock_value_label
from inventory.stock import Stock


def stock_report(stock: Stock) -> str:
    """SKU, name, quantity and unit price per item, then the total stock value."""
    rows = [(item.sku, item.name, quantity, price_label(item)) for item, quantity in stock.lines()]
    table = columns(rows, headers=["SKU", "Item", "Qty", "Price"], align="<<>>")
    return table + f"Total value: {stock_value_label(stock)}\n"
