"""The shipyard service: REST API, live streams, webhooks, schedules, metrics and the dashboard.

``create_app(settings)`` builds the FastAPI application (see ``shipyard.web.app``); authentication,
roles, sessions and CSRF are in ``shipyard.web.auth``.
"""

from shipyard.web.app import create_app
from shipyard.web.auth import Identity, Role, TokenStore
from shipyard.web.settings import ServeSettings

__all__ = ["Identity", "Role", "ServeSettings", "TokenStore", "create_app"]
