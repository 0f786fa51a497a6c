"""Executors run blueprints for tasks: in this process (``local``) or on Celery workers (``celery``).

Both create the run record the same way (``begin_run``). ``submit`` returns the run's id at once and
executes in the background; ``run`` executes before it returns (the CLI's way).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shipyard.errors import ConfigError
from shipyard.executor.settings import ExecutorSettings

if TYPE_CHECKING:
    from shipyard.events import RunState
    from shipyard.executor.local import EventListener, LocalExecutor, begin_run
    from shipyard.model import Task
    from shipyard.store import Store

_LOCAL = ("EventListener", "LocalExecutor", "begin_run")


def __getattr__(name: str) -> Any:
    # The local executor (and the blueprints behind it) loads on first use: reading the settings,
    # as every command does, does not pay for it.
    if name in _LOCAL:
        return getattr(import_module("shipyard.executor.local"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@runtime_checkable
class Executor(Protocol):
    """Executes tasks' blueprints; chosen by name in the settings (``SHIPYARD_EXECUTOR``)."""

    name: str

    def submit(self, task: Task) -> str:
        """Create the run record and return its id at once; the run executes in the background."""
        ...

    def run(self, task: Task) -> RunState:
        """Create the run record, execute it to its end, and return its final state."""
        ...


EXECUTORS = {
    "local": "shipyard.executor.local:LocalExecutor",
    "celery": "shipyard.executor.celery:CeleryExecutor",
}


def executor_from_settings(
    *,
    store: Store,
    home: Path,
    settings: ExecutorSettings | None = None,
    listener: EventListener | None = None,
) -> Executor:
    """The executor the settings name (default: from ``SHIPYARD_*`` variables), imported on use."""
    chosen = settings or ExecutorSettings.from_env()
    try:
        target = EXECUTORS[chosen.executor]
    except KeyError:
        valid = ", ".join(sorted(EXECUTORS))
        raise ConfigError(
            f"Unknown executor {chosen.executor!r} (SHIPYARD_EXECUTOR). Valid executors: {valid}."
        ) from None
    if chosen.executor == "local":
        from shipyard.executor.local import LocalExecutor

        return LocalExecutor(
            store=store, home=home, listener=listener, threads=chosen.local_threads
        )
    module, attr = target.split(":")
    factory = getattr(import_module(module), attr)
    executor: Executor = factory(store=store, home=home, settings=chosen, listener=listener)
    return executor


__all__ = [
    "EXECUTORS",
    "EventListener",
    "Executor",
    "ExecutorSettings",
    "LocalExecutor",
    "begin_run",
    "executor_from_settings",
]
