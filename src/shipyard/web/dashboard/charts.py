"""The metrics page's charts as plain data: x is each week's Monday (Unix seconds), one list per line.

The page hands this to uPlot as JSON; the same numbers are in the tables beside the charts, so the
charts add the shape over time and nobody depends on seeing them.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from shipyard.insights import Insights, WeekRow


def _x(week: WeekRow) -> int:
    return int(datetime.combine(week.week, time(), tzinfo=UTC).timestamp())


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 2)


def _minutes(value: float | None) -> float | None:
    return None if value is None else round(value / 60, 2)


def chart_data(result: Insights) -> list[dict[str, Any]]:
    """One entry per chart: id, title, unit, x values and named series."""
    weeks = result.weeks
    x = [_x(w) for w in weeks]
    types = [row.change_type for row in result.types]
    return [
        {
            "id": "changes",
            "title": "Changes per week, by type",
            "unit": "changes",
            "x": x,
            "series": [{"label": t, "values": [w.by_type.get(t, 0) for w in weeks]} for t in types],
        },
        {
            "id": "automerge",
            "title": "Auto-merge rate per week",
            "unit": "%",
            "x": x,
            "series": [
                {"label": "auto-merged", "values": [_pct(w.summary.auto_merge_rate) for w in weeks]}
            ],
        },
        {
            "id": "defects",
            "title": "Defects caught before merge and after it",
            "unit": "changes",
            "x": x,
            "series": [
                {"label": "gate halts", "values": [w.summary.gate_halts for w in weeks]},
                {
                    "label": "post-merge defects",
                    "values": [w.summary.post_merge_defects for w in weeks],
                },
            ],
        },
        {
            "id": "merge-time",
            "title": "Mean time to merge and MTTR",
            "unit": "min",
            "x": x,
            "series": [
                {
                    "label": "time to merge",
                    "values": [_minutes(w.summary.mean_seconds_to_merge) for w in weeks],
                },
                {"label": "MTTR", "values": [_minutes(w.summary.mttr_seconds) for w in weeks]},
            ],
        },
        {
            "id": "cost",
            "title": "Model cost per merged change",
            "unit": "$",
            "x": x,
            "series": [
                {
                    "label": "cost per change",
                    "values": [
                        None if c is None else round(c, 4)
                        for c in (w.summary.cost_per_change for w in weeks)
                    ],
                }
            ],
        },
    ]


__all__ = ["chart_data"]
