"""Format and parse money amounts held as integer minor units (cents)."""

from __future__ import annotations

__version__ = "1.4.0"
__all__ = ["SYMBOLS", "format_money", "parse_money"]

SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
_DECIMALS = {"JPY": 0}


def format_money(cents: int, currency: str = "EUR") -> str:
    """``1234567`` cents in EUR -> ``"€12,345.67"``; negative amounts get a leading minus."""
    decimals = _DECIMALS.get(currency, 2)
    units, minor = divmod(abs(cents), 10**decimals)
    text = f"{units:,}" + (f".{minor:0{decimals}d}" if decimals else "")
    symbol = SYMBOLS.get(currency, currency + " ")
    return f"{'-' if cents < 0 else ''}{symbol}{text}"


def parse_money(text: str, currency: str = "EUR") -> int:
    """The inverse of ``format_money``: ``"€12,345.67"`` -> ``1234567``."""
    symbol = SYMBOLS.get(currency, currency + " ")
    raw = text.strip()
    negative = raw.startswith("-")
    raw = raw.lstrip("-").removeprefix(symbol).replace(",", "").strip()
    decimals = _DECIMALS.get(currency, 2)
    units, _, minor = raw.partition(".")
    if not units.isdigit() or (minor and not minor.isdigit()) or len(minor) > decimals:
        raise ValueError(f"not a {currency} amount: {text!r}")
    value = int(units) * 10**decimals + int(minor.ljust(decimals, "0") or 0)
    return -value if negative else value
