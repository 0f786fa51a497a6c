from __future__ import annotations

from inventory import Stock, new_item, parse_price, price_label, stock_value_label


def test_price_label_in_euros() -> None:
    assert price_label(new_item("Blue Mug", 1250)) == "€12.50"


def test_price_label_in_dollars_with_thousands() -> None:
    assert price_label(new_item("Sofa", 123456, currency="USD")) == "$1,234.56"


def test_stock_value_label(stock: Stock) -> None:
    assert stock_value_label(stock) == "€129.90"


def test_parse_price_reads_what_people_type() -> None:
    assert parse_price("€12.50") == 1250
    assert parse_price(" €1,234.5 ") == 123450
