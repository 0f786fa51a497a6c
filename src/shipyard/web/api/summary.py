"""The seeds' metrics for this installation, as JSON (the dashboard's metrics page draws the same)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from shipyard.app import App
from shipyard.insights import Summary, insights
from shipyard.web.api.deps import shipyard
from shipyard.web.api.schemas import MetricsSummary
from shipyard.web.auth import Role, require
from shipyard.web.queries import every_run

router = APIRouter(tags=["metrics"], dependencies=[Depends(require(Role.VIEWER))])


def _summary(summary: Summary) -> dict[str, Any]:
    return {
        **asdict(summary),
        "auto_merge_rate": summary.auto_merge_rate,
        "pre_merge_detection": summary.pre_merge_detection,
        "post_merge_defect_rate": summary.post_merge_defect_rate,
        "rollback_rate": summary.rollback_rate,
        "cost_per_change": summary.cost_per_change,
    }


@router.get("/metrics/summary", summary="Changes by type, auto-merge rate, defects, MTTR, cost")
def metrics_summary(app: Annotated[App, Depends(shipyard)]) -> MetricsSummary:
    found = insights(every_run(app.store))
    return MetricsSummary(
        runs=found.runs,
        summary=None if found.summary is None else _summary(found.summary),
        types=[
            {
                **asdict(t),
                "auto_merge_rate": t.auto_merge_rate,
                "review_rate": t.review_rate,
            }
            for t in found.types
        ],
        weeks=[
            {"week": w.week.isoformat(), "by_type": w.by_type, **_summary(w.summary)}
            for w in found.weeks
        ],
    )
