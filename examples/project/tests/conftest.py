from __future__ import annotations

import pytest

from inventory import Stock, new_item


@pytest.fixture
def stock() -> Stock:
    stock = Stock()
    stock.add(new_item("Blue Mug", 1250), 4)
    stock.add(new_item("Tea Towel", 799), 10)
    return stock
