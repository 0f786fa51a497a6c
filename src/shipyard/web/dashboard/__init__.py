"""The dashboard: server-rendered pages (Jinja2 + htmx) over the same application layer as the API.

``router`` holds every page; ``create_app`` includes it. Static files (htmx, its SSE extension and
uPlot, vendored; see ``static/vendor/README.md``) are served by the same router: no build step.
"""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.web.dashboard import pages, submit

router = APIRouter(include_in_schema=False)
router.include_router(submit.router)  # before the pages: /runs/new is not a run's id
router.include_router(pages.router)

__all__ = ["router"]
