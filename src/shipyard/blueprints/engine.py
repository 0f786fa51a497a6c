"""The blueprint engine: a run walks a blueprint's nodes in order, recording each step as events.

A node is deterministic host code or (later) an agent loop. A node may stop the run early by raising
``StopRun`` with the final event to record; any ShipyardError fails the run with its message, and the
user's repository is left exactly as it was because only the delivery node touches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.config import LoadedConfig
from shipyard.errors import ShipyardError
from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store

log = logging.getLogger(__name__)

EventListener = Callable[[str, str, dict[str, Any]], None]
"""Called with (run_id, event type, data) after every recorded event; the CLI draws progress from it."""


class StopRun(Exception):
    """Ends a run before its last node, recording ``event`` with ``data`` as the final word."""

    def __init__(self, event: EventType, data: dict[str, Any]) -> None:
        super().__init__(data.get("reason", event.value))
        self.event = event
        self.data = data


@dataclass
class RunContext:
    """Everything a node may use. Nodes share results through ``values``; effects go through services."""

    run_id: str
    task: Task
    store: Store
    home: Path
    listener: EventListener | None = None
    values: dict[str, Any] = field(default_factory=dict)
    config: LoadedConfig | None = None
    fence: Callable[[], None] | None = None
    """Called before every event is recorded; raises when this process may no longer write the run
    (a worker whose lease another worker took over)."""

    def emit(self, type_: EventType, data: dict[str, Any]) -> None:
        if self.fence is not None:
            self.fence()
        event = self.store.append(self.run_id, type_, data)
        if self.listener is not None:
            self.listener(self.run_id, type_.value, event.data)  # as recorded: secrets masked

    def log(self, message: str) -> None:
        self.emit(EventType.LOG, {"message": message})

    @property
    def run_dir(self) -> Path:
        path = self.home / "runs" / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path


Node = Callable[[RunContext], None]


@dataclass(frozen=True)
class Step:
    """A named node of a blueprint."""

    name: str
    run: Node
    kind: str = "deterministic"


@dataclass(frozen=True)
class Blueprint:
    """A named, versioned sequence of nodes."""

    name: str
    version: str
    steps: tuple[Step, ...]
    description: str = ""
    finish: Node | None = None


def execute(blueprint: Blueprint, ctx: RunContext) -> None:
    """Run every node in order, then the blueprint's ``finish`` hook (the report), whatever happened.

    Stops at the first StopRun or error, which it records; never raises ShipyardError: its message is
    recorded as the run's failure.
    """
    try:
        _walk(blueprint, ctx)
    finally:
        if blueprint.finish is not None:
            try:
                blueprint.finish(ctx)
            except Exception:  # a report that cannot be written must not hide the run's outcome
                log.exception("finishing run %s failed", ctx.run_id)


def _walk(blueprint: Blueprint, ctx: RunContext) -> None:
    for index in range(len(blueprint.steps)):
        if not run_step(blueprint, index, ctx):
            return


Checkpoint = Callable[[int, RunContext], None]
"""Called after a node's work succeeded and before its ``node.finished`` event is recorded."""


def run_step(
    blueprint: Blueprint, index: int, ctx: RunContext, *, checkpoint: Checkpoint | None = None
) -> bool:
    """Run the blueprint's node at ``index``; True when the run goes on to the next node.

    A node that stops the run records its final event in ``node.finished`` too (``stop``), so an
    executor resuming after a crash between the two can still record it.
    """
    step = blueprint.steps[index]
    ctx.emit(EventType.NODE_STARTED, {"node": step.name, "kind": step.kind})
    started = time.monotonic()
    try:
        step.run(ctx)
    except StopRun as stop:
        if checkpoint is not None:
            checkpoint(index, ctx)
        ctx.emit(
            EventType.NODE_FINISHED,
            {
                "node": step.name,
                "summary": str(stop),
                "stop": {"event": stop.event.value, "data": stop.data},
            },
        )
        ctx.emit(stop.event, stop.data)
        return False
    except ShipyardError as exc:
        ctx.emit(EventType.NODE_FAILED, {"node": step.name, "error": str(exc)})
        ctx.emit(EventType.RUN_FAILED, {"error": str(exc), "node": step.name})
        return False
    except Exception as exc:
        # A bug in shipyard: keep the run's record honest, then let the caller see the traceback.
        log.exception("node %s of run %s crashed", step.name, ctx.run_id)
        ctx.emit(EventType.NODE_FAILED, {"node": step.name, "error": repr(exc)})
        ctx.emit(EventType.RUN_FAILED, {"error": f"internal error: {exc!r}", "node": step.name})
        raise
    summary = ctx.values.pop("summary", "")
    if checkpoint is not None:
        checkpoint(index, ctx)
    ctx.emit(
        EventType.NODE_FINISHED,
        {
            "node": step.name,
            "summary": summary,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return index + 1 < len(blueprint.steps)
