"""The Celery executor: runs advance node by node as Celery tasks on ``shipyard worker`` processes.

Each ``shipyard.advance(run_id, ticket)`` message executes the run's next node under its lease
(``executor/stepper.py``), then sends the message for the node after it to the queue that node
needs: ``<prefix>.sandbox`` for nodes that start sandboxes (only workers that can run bubblewrap
consume it), ``<prefix>.host`` for the rest. Every worker also sweeps: a run whose lease expired
(its worker died) or whose message was lost (a broker restarted empty) gets a new ticket and message.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from celery import Celery  # type: ignore[import-untyped]
from celery import Task as CeleryTask
from kombu.connection import Connection

from shipyard.blueprints import get_blueprint
from shipyard.blueprints.deps import bump
from shipyard.blueprints.engine import Blueprint, EventListener
from shipyard.blueprints.nodes import decide_node, prepare
from shipyard.blueprints.submit import apply_patch
from shipyard.errors import ShipyardError
from shipyard.events import RunState
from shipyard.executor.local import begin_run
from shipyard.executor.settings import ExecutorSettings
from shipyard.executor.stepper import Outcome, Stepper, progress
from shipyard.model import Task
from shipyard.store import Store
from shipyard.store.leases import Leases

log = logging.getLogger(__name__)

ADVANCE = "shipyard.advance"
BUSY_RETRY_SECONDS = 2.0
"""How long a message waits before it tries again when its repository is at its limit."""
PUBLISH_RETRY = {
    "max_retries": 20,
    "interval_start": 0.5,
    "interval_step": 1.0,
    "interval_max": 5.0,
}
"""A broker outage while sending is retried for about a minute and a half; after that the run
stays queued in the store and the next sweep sends it again."""

# Nodes that run only host code (git, configuration, the pure policy): any worker may run them.
HOST_NODES = frozenset({prepare, decide_node, bump, apply_patch})


class BrokerUnavailable(ShipyardError):
    """The Celery broker cannot be reached."""


def queue_for(blueprint: Blueprint, node: str | None, settings: ExecutorSettings) -> str:
    """The queue of a worker that can execute ``node``: sandbox-capable unless it is host code."""
    for step in blueprint.steps:
        if step.name == node and step.run in HOST_NODES:
            return settings.host_queue
    return settings.sandbox_queue if node is not None else settings.host_queue


def make_app(settings: ExecutorSettings) -> Celery:
    """The Celery application for ``settings``; workers and senders build it the same way."""
    app = Celery("shipyard", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,  # a message is done when its node is, not when a worker took it
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a busy worker leaves the next run to an idle one
        task_default_queue=settings.host_queue,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a worker waits out a broker outage
        broker_transport_options={"visibility_timeout": 6 * 3600},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.task(name=ADVANCE, bind=True, max_retries=None)(_advance_task)
    return app


def send(app: Celery, settings: ExecutorSettings, run_id: str, ticket: int, queue: str) -> bool:
    """Send the message that advances ``run_id``; False (logged) if the broker stayed away."""
    try:
        app.send_task(
            ADVANCE, args=[run_id, ticket], queue=queue, retry=True, retry_policy=PUBLISH_RETRY
        )
    except Exception as exc:  # kombu raises the transport's own errors
        log.warning("run %s stays queued: the broker did not take its message (%s)", run_id, exc)
        return False
    return True


def check_broker(url: str, *, timeout: float = 3.0) -> None:
    """BrokerUnavailable with one line to act on when nothing answers at ``url``."""
    try:
        with Connection(url, connect_timeout=timeout) as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        detail = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
        raise BrokerUnavailable(
            f"cannot reach the broker at {shown_url(url)}: {detail}. "
            "Start Redis or RabbitMQ there, or set SHIPYARD_BROKER_URL to where it runs."
        ) from exc


def shown_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class CeleryExecutor:
    """Hands runs to workers. ``submit`` returns at once; ``run`` waits for the run to end."""

    name = "celery"

    def __init__(
        self,
        *,
        store: Store,
        home: Path,
        settings: ExecutorSettings,
        listener: EventListener | None = None,
        poll_seconds: float = 0.5,
    ) -> None:
        self.store, self.home, self.settings = store, home, settings
        self.listener = listener
        self.poll_seconds = poll_seconds
        self.app = make_app(settings)
        self.leases = Leases(store)

    def submit(self, task: Task) -> str:
        blueprint = get_blueprint(task.blueprint)
        run_id = begin_run(self.store, task, self.listener)
        ticket = self.leases.register(run_id, task.repo)
        first = blueprint.steps[0].name if blueprint.steps else None
        send(self.app, self.settings, run_id, ticket, queue_for(blueprint, first, self.settings))
        return run_id

    def run(self, task: Task) -> RunState:
        run_id = self.submit(task)
        return self.wait(run_id)

    def wait(self, run_id: str, *, timeout: float | None = None) -> RunState:
        """Follow a run's events (to the listener) until workers are done with it."""
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done = not self.leases.managed(run_id)
            for event in self.store.events(run_id, after=seen):
                seen = event.seq
                if self.listener is not None:
                    self.listener(run_id, event.type, event.data)
            if done:
                return self.store.state(run_id)
            if deadline is not None and time.monotonic() > deadline:
                raise ShipyardError(f"run {run_id} did not finish within {timeout:g} s.")
            time.sleep(self.poll_seconds)


# --- inside a worker -------------------------------------------------------------------------


class _Worker:
    """What one worker process needs, opened on first use (after Celery forks its pool)."""

    settings: ExecutorSettings | None = None
    home: Path | None = None
    _pid: int | None = None
    _stepper: Stepper | None = None

    @classmethod
    def stepper(cls) -> Stepper:
        if cls._stepper is None or cls._pid != os.getpid():
            assert cls.settings is not None, "worker not configured"
            assert cls.home is not None, "worker not configured"
            store = Store.open(cls.settings.store_url, home=cls.home)
            owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
            cls._stepper = Stepper(store, home=cls.home, owner=owner, settings=cls.settings)
            cls._pid = os.getpid()
        return cls._stepper


def configure_worker(settings: ExecutorSettings, home: Path) -> None:
    _Worker.settings, _Worker.home = settings, home


def _advance_task(self: CeleryTask, run_id: str, ticket: int) -> str:
    stepper = _Worker.stepper()
    advanced = stepper.advance(run_id, ticket)
    if advanced.outcome is Outcome.BUSY:
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    if advanced.outcome is Outcome.NEXT and advanced.ticket is not None:
        task = stepper.store.state(run_id).task
        queue = queue_for(get_blueprint(str(task["blueprint"])), advanced.node, stepper.settings)
        send(self.app, stepper.settings, run_id, advanced.ticket, queue)
    return str(advanced.outcome.value)


class Sweeper:
    """Requeues stalled runs every ``settings.sweep_seconds`` from a thread of the worker."""

    def __init__(self, app: Celery, store: Store, settings: ExecutorSettings) -> None:
        self.app, self.store, self.settings = app, store, settings
        self.leases = Leases(store)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shipyard-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def sweep(self) -> list[str]:
        """Send a new message for every stalled run; the runs requeued."""
        requeued = []
        for run_id in self.leases.stalled(queued_for=self.settings.requeue_seconds):
            ticket = self.leases.reissue(run_id, queued_for=self.settings.requeue_seconds)
            if ticket is None:
                continue
            events = self.store.events(run_id)
            blueprint = get_blueprint(str(self.store.state(run_id).task["blueprint"]))
            where = progress(blueprint, events)
            node = None if where.next_index is None else blueprint.steps[where.next_index].name
            log.warning("run %s stalled (before %s); sending it again", run_id, node or "its end")
            send(self.app, self.settings, run_id, ticket, queue_for(blueprint, node, self.settings))
            requeued.append(run_id)
        return requeued

    def _loop(self) -> None:
        while True:
            try:
                self.sweep()
            except ShipyardError as exc:  # the store is away; the next sweep tries again
                log.warning("sweeping for stalled runs: %s", exc)
            except Exception:
                log.exception("sweeping for stalled runs failed")
            if self._stop.wait(self.settings.sweep_seconds):
                return


def worker_argv(
    settings: ExecutorSettings, *, queues: list[str], concurrency: int, loglevel: str
) -> list[str]:
    """Celery's own worker arguments for a shipyard worker."""
    pool = "solo" if concurrency == 1 else "prefork"
    return [
        "worker",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
        f"--pool={pool}",
        f"--loglevel={loglevel}",
        f"--hostname=shipyard-{os.getpid()}@{socket.gethostname()}",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


__all__ = [
    "ADVANCE",
    "BrokerUnavailable",
    "CeleryExecutor",
    "Sweeper",
    "check_broker",
    "configure_worker",
    "make_app",
    "queue_for",
    "send",
    "worker_argv",
]
