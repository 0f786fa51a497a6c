from __future__ import annotations

import pytest

from inventory import OutOfStock, Stock, new_item


def test_adding_accumulates(stock: Stock) -> None:
    stock.add(new_item("Blue Mug", 1250), 2)
    assert stock.quantity("blue-mug") == 6


def test_removing_lowers_the_quantity(stock: Stock) -> None:
    stock.remove("tea-towel", 3)
    assert stock.quantity("tea-towel") == 7


def test_cannot_remove_more_than_in_stock(stock: Stock) -> None:
    with pytest.raises(OutOfStock, match="5 requested, 4 in stock"):
        stock.remove("blue-mug", 5)
    assert stock.quantity("blue-mug") == 4


def test_unknown_sku_has_no_stock(stock: Stock) -> None:
    assert stock.quantity("teapot") == 0


@pytest.mark.parametrize("quantity", [0, -2])
def test_quantities_must_be_positive(stock: Stock, quantity: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        stock.add(new_item("Teapot", 2000), quantity)
    with pytest.raises(ValueError, match="positive"):
        stock.remove("blue-mug", quantity)


def test_value_is_the_sum_over_items(stock: Stock) -> None:
    assert stock.value() == 4 * 1250 + 10 * 799


def test_skus_lists_every_item(stock: Stock) -> None:
    assert stock.skus() == {"blue-mug", "tea-towel"}
