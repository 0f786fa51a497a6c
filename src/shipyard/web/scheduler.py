"""Schedules: cron expressions per repository and blueprint, started when due, exactly once.

Each server looks at the schedules every few seconds. For a schedule that is due it inserts a claim
row (schedule, due time); the database's unique constraint lets exactly one insert succeed, so two
servers, or a server restarted mid-way, never start the same due run twice. A schedule that was due
several times while no server ran starts once, for its latest due time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta

from croniter import croniter
from pydantic import TypeAdapter, ValidationError

from shipyard.app import App
from shipyard.errors import ShipyardError
from shipyard.executor import Executor
from shipyard.web.intake import TaskRequest, start
from shipyard.web.registry import Registry, ScheduleRecord
from shipyard.web.settings import ServeSettings

log = logging.getLogger(__name__)
SCHEDULE_SOURCE = "schedule"
_REQUEST: TypeAdapter[TaskRequest] = TypeAdapter(TaskRequest)


def next_due(cron: str, after: datetime) -> datetime:
    """The first time ``cron`` is due strictly after ``after`` (UTC)."""
    value: datetime = croniter(cron, after.astimezone(UTC)).get_next(datetime)
    return value.astimezone(UTC)


def latest_due(cron: str, since: datetime, now: datetime) -> datetime | None:
    """The latest due time in (``since``, ``now``], or None when nothing was due."""
    now = now.astimezone(UTC)
    minute = now.replace(second=0, microsecond=0)
    if croniter.match(cron, minute) and minute <= now:
        latest = minute
    else:
        previous: datetime = croniter(cron, now).get_prev(datetime)
        latest = previous.astimezone(UTC)
    return latest if latest > since.astimezone(UTC) else None


class Scheduler:
    """Starts due schedules; ``tick`` once, or ``start`` a background thread that ticks."""

    def __init__(
        self, registry: Registry, executor: Executor, app: App, settings: ServeSettings
    ) -> None:
        self.registry = registry
        self.executor = executor
        self.app = app
        self.interval = settings.scheduler_interval
        self.name = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def next_run(self, schedule: ScheduleRecord) -> datetime | None:
        """When the schedule is next due (None while disabled)."""
        if not schedule.enabled:
            return None
        return next_due(schedule.cron, self._since(schedule))

    def _since(self, schedule: ScheduleRecord) -> datetime:
        return self.registry.last_due(schedule.id) or schedule.created_at

    def tick(self, now: datetime | None = None) -> list[tuple[str, list[str]]]:
        """Start every schedule due at ``now``; the (schedule, run ids) this scheduler started."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        started = []
        for schedule in self.registry.schedules():
            if not schedule.enabled:
                continue
            due = latest_due(schedule.cron, self._since(schedule), now)
            if due is None or not self.registry.claim(schedule.id, due, by=self.name):
                continue
            started.append((schedule.id, self._fire(schedule, due)))
        return started

    def _fire(self, schedule: ScheduleRecord, due: datetime) -> list[str]:
        run_ids: list[str] = []
        error = None
        try:
            request = _REQUEST.validate_python(schedule.request)
            repo = self.registry.repo(schedule.repo)
            run_ids = start(
                request,
                repo,
                self.app,
                self.executor,
                requested_by=f"schedule:{schedule.id}",
                source=SCHEDULE_SOURCE,
            )
        except (ShipyardError, ValidationError) as exc:
            error = str(exc)
            log.warning("schedule %s due %s could not start: %s", schedule.id, due, error)
        self.registry.settle_claim(schedule.id, due, run_ids=run_ids, error=error)
        return run_ids

    # --- the background loop -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="shipyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # one bad tick must not end the schedules for good
                log.exception("the scheduler's tick failed; trying again in %ss", self.interval)
            self._stop.wait(timedelta(seconds=self.interval).total_seconds())
