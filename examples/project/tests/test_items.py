from __future__ import annotations

import pytest

from inventory import new_item


def test_sku_is_the_slug_of_the_name() -> None:
    assert new_item("Blue Mug (Large)", 1250).sku == "blue-mug-large"


def test_sku_drops_accents() -> None:
    assert new_item("Crème Brûlée Dish", 900).sku == "creme-brulee-dish"


def test_sku_is_unique_among_taken() -> None:
    item = new_item("Blue Mug", 1250, taken={"blue-mug", "blue-mug-2"})
    assert item.sku == "blue-mug-3"


def test_item_needs_a_name_with_letters() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        new_item("!!!", 100)


def test_price_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        new_item("Mug", -1)
