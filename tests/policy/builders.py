"""Small constructors for change facts, so each test states only what it is about."""

from __future__ import annotations

from typing import Any

from shipyard.model import ChangeFacts, ChangeType, DiffFacts, FileChange

GOOD: dict[str, Any] = {
    "pass_rate": 1.0,
    "static_errors": 0,
    "coverage_percent": 90.0,
    "coverage_delta": 0.0,
}
"""Measurements that pass every seed threshold."""


def change(
    *paths: str,
    change_type: ChangeType = ChangeType.DEPENDENCY_UPDATE,
    lines_per_file: int = 2,
    **measured: Any,
) -> ChangeFacts:
    """Facts for a change touching ``paths``, measured as ``GOOD`` unless overridden."""
    files = tuple(FileChange(path=p, added=lines_per_file) for p in paths)
    values = {**GOOD, **measured}
    return ChangeFacts(change_type=change_type, diff=DiffFacts(files=files), **values)


def files(n: int, *, under: str = "docs") -> list[str]:
    return [f"{under}/page{i}.md" for i in range(n)]
