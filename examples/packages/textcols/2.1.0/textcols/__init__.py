"""Plain-text tables: rows of cells laid out in aligned columns."""

from __future__ import annotations

from collections.abc import Sequence

__version__ = "2.1.0"
__all__ = ["columns"]


def columns(
    rows: Sequence[Sequence[object]],
    headers: Sequence[str] | None = None,
    align: str | None = None,
    gap: int = 2,
) -> str:
    """Rows as aligned text columns; ``align`` holds one of ``<``, ``>`` or ``^`` per column."""
    table = [[str(cell) for cell in row] for row in ([headers] if headers else []) + list(rows)]
    if not table:
        return ""
    width = max(len(row) for row in table)
    table = [row + [""] * (width - len(row)) for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(width)]
    aligns = (align or "<" * width).ljust(width, "<")
    lines = [
        (" " * gap).join(f"{cell:{aligns[i]}{widths[i]}}" for i, cell in enumerate(row)).rstrip()
        for row in table
    ]
    if headers:
        lines.insert(1, (" " * gap).join("-" * w for w in widths))
    return "\n".join(lines) + "\n"
