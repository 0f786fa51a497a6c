"""Stock levels per item, with the rule that stock never goes below zero."""

from __future__ import annotations

from inventory.items import Item


class OutOfStock(Exception):
    """More units were requested than are in stock."""


class Stock:
    """How many units of each item are on hand."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._quantities: dict[str, int] = {}

    def add(self, item: Item, quantity: int = 1) -> None:
        if quantity <= 0:
            raise ValueError("quantity to add must be positive")
        self._items[item.sku] = item
        self._quantities[item.sku] = self._quantities.get(item.sku, 0) + quantity

    def remove(self, sku: str, quantity: int = 1) -> None:
        if quantity <= 0:
            raise ValueError("quantity to remove must be positive")
        on_hand = self.quantity(sku)
        if quantity > on_hand:
            raise OutOfStock(f"{sku}: {quantity} requested, {on_hand} in stock")
        self._quantities[sku] = on_hand - quantity

    def quantity(self, sku: str) -> int:
        return self._quantities.get(sku, 0)

    def skus(self) -> set[str]:
        return set(self._items)

    def lines(self) -> list[tuple[Item, int]]:
        """(item, quantity) for every item ever stocked, by SKU."""
        return [(self._items[sku], self._quantities[sku]) for sku in sorted(self._items)]

    def value(self) -> int:
        """Total value of the stock on hand, in cents."""
        return sum(item.unit_price * qty for item, qty in self.lines())
