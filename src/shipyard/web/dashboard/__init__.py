"""The dashboard: server-rendered pages (Jinja2 + htmx) over the same application layer as the API."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
