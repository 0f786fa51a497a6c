"""The dashboard: server-rendered pages (Jinja2 + htmx) over the same application layer as the API.

``router`` holds every page; ``create_app`` includes it. Static files (htmx, its SSE extension and
uPlot, vendored; see ``static/vendor/README.md``) are served by the same router: no build step.
"""

from __future__ import annotations

from shipyard.web.dashboard.pages import router

__all__ = ["router"]
