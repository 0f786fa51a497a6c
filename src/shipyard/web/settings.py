"""How the server runs: where its home is, how it listens, its webhook secret and background work.

Read once at start from the command line and the environment (``ServeSettings.from_env``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shipyard.config import shipyard_home
from shipyard.errors import ConfigError, format_validation_error

WEBHOOK_SECRET_ENV = "SHIPYARD_WEBHOOK_SECRET"


class ServeSettings(BaseModel):
    """Settings of one ``shipyard serve`` process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(default_factory=shipyard_home)
    """The shipyard home: its store, workspaces, server secret and uploaded patches."""
    host: str = "127.0.0.1"
    """Interface to listen on; loopback unless a reverse proxy on another host forwards to it."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port."""
    scheduler: bool = True
    """Start due schedules from this process (safe with several servers: each due time is claimed once)."""
    scheduler_interval: float = Field(default=30.0, gt=0, le=3600)
    """Seconds between two looks at the schedules."""
    webhook_secret: SecretStr | None = None
    """Shared secret of the GitHub webhook (``$SHIPYARD_WEBHOOK_SECRET``); webhooks are refused without it."""
    secure_cookies: Literal["auto", "always"] = "auto"
    """``auto`` marks the session cookie Secure when the request came over https (behind a proxy:
    run uvicorn with ``--proxy-headers``); ``always`` marks it Secure regardless."""
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    """How long a dashboard session lasts."""
    stream_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    """How often live streams look for new events."""

    @classmethod
    def from_env(cls, **overrides: object) -> ServeSettings:
        """Settings from ``$SHIPYARD_HOME`` and ``$SHIPYARD_WEBHOOK_SECRET``, then ``overrides``."""
        values: dict[str, object] = {}
        secret = os.environ.get(WEBHOOK_SECRET_ENV, "")
        if secret:
            values["webhook_secret"] = secret
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, "shipyard serve options")) from exc
