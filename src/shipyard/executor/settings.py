"""How runs are executed on this host: the executor's settings, read once from the environment.

``local`` (the default) runs in this process; ``celery`` hands runs to ``shipyard worker`` processes
through a broker, with the store on PostgreSQL shared by every worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shipyard.errors import ConfigError

ENV_PREFIX = "SHIPYARD_"


class ExecutorSettings(BaseModel):
    """Every field is read from ``SHIPYARD_<FIELD>`` (upper case), e.g. ``SHIPYARD_EXECUTOR=celery``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    executor: str = "local"
    """``local``: runs execute in the calling process; ``celery``: on ``shipyard worker`` processes."""
    store_url: str | None = None
    """The store's database URL; default ``sqlite:///<home>/shipyard.db``. Celery needs PostgreSQL."""
    broker_url: str = "redis://127.0.0.1:6379/0"
    """The Celery broker: ``redis://host:6379/N`` or ``amqp://user:pass@host:5672//``."""
    local_threads: int = Field(default=2, ge=1, le=64)
    """Runs the local executor's ``submit`` executes at once, in background threads."""
    worker_concurrency: int = Field(default=2, ge=1, le=256)
    """Nodes one ``shipyard worker`` process executes at once (Celery's prefork pool size)."""
    repo_concurrency: int = Field(default=4, ge=1, le=1024)
    """Nodes executed at once for one repository, across every worker."""
    lease_seconds: float = Field(default=30.0, ge=2.0, le=3600.0)
    """A node's lease: renewed every third of this; another worker takes the run over once expired."""
    sweep_seconds: float = Field(default=10.0, ge=0.5, le=3600.0)
    """How often each worker looks for runs whose lease expired."""
    requeue_seconds: float = Field(default=600.0, ge=1.0)
    """A run queued this long without a worker taking it gets its message sent again (a broker
    that restarted empty loses messages); the older copy is dropped if it still comes."""
    queue_prefix: str = "shipyard"
    """Celery queue names: ``<prefix>.host`` (host-side nodes) and ``<prefix>.sandbox``."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ExecutorSettings:
        """The settings given as ``SHIPYARD_*`` variables; ConfigError names the variable to fix."""
        env = os.environ if environ is None else environ
        values = {
            name: env[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if env.get(ENV_PREFIX + name.upper(), "").strip()
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"executor settings are invalid: {problems}.") from exc

    @property
    def host_queue(self) -> str:
        return f"{self.queue_prefix}.host"

    @property
    def sandbox_queue(self) -> str:
        return f"{self.queue_prefix}.sandbox"


__all__ = ["ExecutorSettings"]
