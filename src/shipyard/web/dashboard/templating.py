"""The dashboard's Jinja2 environment: autoescaping always on, and the filters its pages use."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

HERE = Path(__file__).parent
STATIC = HERE / "static"


def duration(seconds: float | None) -> str:
    """``42 s``, ``3 min 5 s``, ``2 h 10 min``, ``1 d 4 h``; an em dash for nothing."""
    if seconds is None:
        return "—"
    s = round(float(seconds))
    if s < 60:
        return f"{float(seconds):.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def money(value: float | None) -> str:
    if value is None:
        return "—"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def when(moment: datetime | None) -> str:
    """A moment in UTC, to the second (the page states the zone once)."""
    return "—" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def short(value: Any, length: int = 12) -> str:
    return "" if value is None else str(value)[:length]


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its file name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=duration, percent=percent, money=money, when=when, short=short)
    return env


templates = Jinja2Templates(env=_environment())

__all__ = ["STATIC", "duration", "money", "percent", "short", "templates", "when"]
