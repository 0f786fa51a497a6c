"""A small stock-keeping library: items with SKUs, stock levels, prices and a plain-text report."""

from inventory.items import Item, new_item
from inventory.pricing import parse_price, price_label, stock_value_label
from inventory.report import stock_report
from inventory.stock import OutOfStock, Stock

__all__ = [
    "Item",
    "OutOfStock",
    "Stock",
    "new_item",
    "parse_price",
    "price_label",
    "stock_report",
    "stock_value_label",
]
