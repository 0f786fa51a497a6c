"""Format and parse money amounts.

2.0.0 is a breaking release: amounts are Decimal major units (12.5 means €12.50) everywhere, no
longer integer cents, and the currency code follows the number (``"12.50 EUR"``) unless
``symbol=True``.
"""

from __future__ import annotations

from decimal import Decimal

__version__ = "2.0.0"
__all__ = ["SYMBOLS", "format_money", "parse_money"]

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
_DECIMALS = {"JPY": 0}


def format_money(
    amount: Decimal | int | str, currency: str = "EUR", *, symbol: bool = False
) -> str:
    """``Decimal("12345.67")`` -> ``"12,345.67 EUR"`` (or ``"€12,345.67"`` with ``symbol=True``)."""
    decimals = _DECIMALS.get(currency, 2)
    value = Decimal(amount).quantize(Decimal(1).scaleb(-decimals))
    text = f"{abs(value):,.{decimals}f}"
    sign = "-" if value < 0 else ""
    if symbol and currency in SYMBOLS:
        return f"{sign}{SYMBOLS[currency]}{text}"
    return f"{sign}{text} {currency}"


def parse_money(text: str) -> tuple[Decimal, str]:
    """The inverse of ``format_money``: ``"12,345.67 EUR"`` -> ``(Decimal("12345.67"), "EUR")``."""
    number, _, currency = text.strip().rpartition(" ")
    if not currency.isalpha():
        raise ValueError(f"not an amount with a currency code: {text!r}")
    return Decimal(number.replace(",", "")), currency
