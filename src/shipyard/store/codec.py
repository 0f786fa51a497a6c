"""How values go into the store and come back: event data as JSON text, times in UTC."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import PurePath
from typing import Any


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones in the session zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dumps(value: Any) -> str:
    """Compact JSON text for a column."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def to_json(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` as it will read back from the store: plain JSON, datetimes as ISO strings."""
    result: dict[str, Any] = json.loads(json.dumps(value, default=_json_default))
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(
        f"event data must be JSON values; a {type(value).__name__} cannot be stored: "
        "convert it to a string, number, list or dict first."
    )


def loads(text: str) -> dict[str, Any]:
    """A column's JSON text back as a dict."""
    result: dict[str, Any] = json.loads(text)
    return result
