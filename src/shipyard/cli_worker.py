"""``shipyard worker``: a Celery worker that executes runs node by node (``SHIPYARD_EXECUTOR=celery``)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from shipyard.config import shipyard_home
from shipyard.console import console, guard
from shipyard.errors import ConfigError, SandboxUnavailable
from shipyard.executor.settings import ExecutorSettings

log = logging.getLogger(__name__)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Nodes this worker executes at once (default SHIPYARD_WORKER_CONCURRENCY)."
        ),
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(
            help="Queues to consume, comma-separated: host, sandbox (default: both when this host "
            "can start a bubblewrap sandbox, else host only)."
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery's log level.")] = "warning",
) -> None:
    """Execute runs handed out through the broker, until stopped (SIGTERM finishes the current node)."""
    from shipyard.executor.celery import (
        Sweeper,
        check_broker,
        configure_worker,
        make_app,
        shown_url,
        worker_argv,
    )
    from shipyard.store import Store

    def prepare() -> tuple[ExecutorSettings, list[str], int]:
        settings = ExecutorSettings.from_env()
        home = shipyard_home()
        home.mkdir(parents=True, exist_ok=True)
        # Each service is checked once, here, so that a missing one is one line, not a traceback.
        Store.open(settings.store_url, home=home).close()
        check_broker(settings.broker_url)
        chosen = _queues(settings, queues)
        configure_worker(settings, home)
        return settings, chosen, concurrency or settings.worker_concurrency

    settings, chosen, slots = guard(prepare)
    app = make_app(settings)
    store = Store.open(settings.store_url, home=shipyard_home())
    sweeper = Sweeper(app, store, settings)
    sweeper.start()
    console.print(
        f"shipyard worker: {slots} slot(s) on {', '.join(chosen)}; broker "
        f"{shown_url(settings.broker_url)}; home {shipyard_home()}"
    )
    try:
        app.worker_main(argv=worker_argv(settings, queues=chosen, concurrency=slots,
                                         loglevel=loglevel))  # fmt: skip
    finally:
        sweeper.stop()
        store.close()


def _queues(settings: ExecutorSettings, asked: str | None) -> list[str]:
    """The queues to consume; the sandbox queue only where a sandbox can start."""
    from shipyard.sandbox import ensure_available

    names = {"host": settings.host_queue, "sandbox": settings.sandbox_queue}
    wanted = ["host", "sandbox"] if asked is None else [q.strip() for q in asked.split(",") if q]
    unknown = [q for q in wanted if q not in names]
    if unknown or not wanted:
        raise ConfigError(
            f"--queues: unknown queue {', '.join(unknown) or '(none)'}; give host, sandbox or both."
        )
    if "sandbox" in wanted:
        try:
            ensure_available()
        except SandboxUnavailable as exc:
            if asked is not None:
                raise
            console.print(f"[yellow]no sandbox queue:[/] {exc}")
            wanted.remove("sandbox")
    return [names[q] for q in wanted]


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the ``shipyard`` command."""
    app.command("worker")(worker)
