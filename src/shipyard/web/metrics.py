"""Prometheus metrics at ``/metrics`` (viewer role; Prometheus sends the token as a bearer).

A custom collector reads the store at scrape time (cached for a few seconds): runs by status,
decision and change type; gate durations; sandbox start latency; queue depth; reviews waiting; agent token and cost spend.
HTTP requests are counted and timed by route template.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from shipyard.events import EventType
from shipyard.insights import change_record
from shipyard.model import RunStatus
from shipyard.store import Store
from shipyard.web.api.schemas import ERRORS
from shipyard.web.auth import Identity, Role, require
from shipyard.web.queries import every_run

GATE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
SANDBOX_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_CACHE_SECONDS = 5.0


class StoreCollector(Collector):
    """Metrics derived from the run store's events."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def describe(self) -> Iterator[Metric]:
        # Without this the registry would collect once at registration to learn the names, and
        # the first scrape would get that (cached) reading from before the server started.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > _CACHE_SECONDS:
                self._cached = (now, self._measure())
            yield from self._cached[1]

    def _measure(self) -> list[Metric]:
        runs = Tally[tuple[str, str, str]]()
        gates: dict[tuple[str, str], list[float]] = {}
        starts: list[float] = []
        tokens = cost = 0.0
        for events in every_run(self.store):
            record = change_record(events)
            status = record.state.status.value
            runs[(status, record.action or "none", record.change_type)] += 1
            tokens += record.tokens
            cost += record.cost_usd
            for event in events:
                seconds = event.data.get("seconds")
                if (
                    event.type == EventType.GATE_FINISHED
                    and isinstance(seconds, int | float)
                    and not event.data.get("cached")
                    and event.data.get("status") != "skipped"
                ):
                    key = (str(event.data.get("gate")), str(event.data.get("phase")))
                    gates.setdefault(key, []).append(float(seconds))
                    start = _sandbox_start(event.data)
                    if start is not None:
                        starts.append(start)
        by_status = Tally[str]()
        for (status, _, _), count in runs.items():
            by_status[status] += count
        runs_metric = GaugeMetricFamily(
            "shipyard_runs",
            "Runs by status, policy decision and change type.",
            labels=["status", "decision", "change_type"],
        )
        for (status, action, kind), count in sorted(runs.items()):
            runs_metric.add_metric([status, action, kind], count)
        queue = GaugeMetricFamily(
            "shipyard_queue_depth", "Runs recorded and not yet started (status queued)."
        )
        queue.add_metric([], by_status[RunStatus.QUEUED.value])
        running = GaugeMetricFamily("shipyard_runs_running", "Runs being executed now.")
        running.add_metric([], by_status[RunStatus.RUNNING.value])
        waiting = GaugeMetricFamily("shipyard_reviews_waiting", "Changes waiting for review.")
        waiting.add_metric([], by_status[RunStatus.AWAITING_REVIEW.value])
        durations = HistogramMetricFamily(
            "shipyard_gate_duration_seconds",
            "How long gates took, by gate and phase (cached and skipped results left out).",
            labels=["gate", "phase"],
        )
        for (gate, phase), values in sorted(gates.items()):
            durations.add_metric([gate, phase], _buckets(values, GATE_BUCKETS), sum(values))
        sandbox = HistogramMetricFamily(
            "shipyard_sandbox_start_seconds",
            "Start-up of a fresh bubblewrap sandbox for a run's gates, once per measured tree.",
        )
        sandbox.add_metric([], _buckets(starts, SANDBOX_BUCKETS), sum(starts))
        spent_tokens = CounterMetricFamily(
            "shipyard_agent_tokens", "Tokens agents spent, over every run."
        )
        spent_tokens.add_metric([], tokens)
        spent = CounterMetricFamily(
            "shipyard_agent_cost_usd", "Model spend of agents in US dollars, over every run."
        )
        spent.add_metric([], cost)
        return [runs_metric, queue, running, waiting, durations, sandbox, spent_tokens, spent]


def _buckets(values: list[float], bounds: tuple[float, ...]) -> list[tuple[str, float]]:
    counts: list[tuple[str, float]] = [(str(b), sum(1 for v in values if v <= b)) for b in bounds]
    counts.append(("+Inf", len(values)))
    return counts


def _sandbox_start(data: dict[str, object]) -> float | None:
    facts = data.get("facts")
    value = facts.get("sandbox_start_seconds") if isinstance(facts, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _template(request: Request) -> str:
    """The route's path with its parameters named, e.g. ``/api/runs/{run_id}`` (few label values)."""
    if request.scope.get("route") is None:
        return "unmatched"
    params = {str(v): k for k, v in request.path_params.items()}
    segments = request.url.path.split("/")
    return "/".join(f"{{{params[s]}}}" if s in params else s for s in segments)


def install(app: FastAPI) -> None:
    """Add ``/metrics`` and the HTTP request metrics to ``app``."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StoreCollector(app.state.shipyard.store))
    requests = Counter(
        "shipyard_http_requests",
        "HTTP requests by method, route and status code.",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "shipyard_http_request_seconds",
        "HTTP request latency by method and route (streams: until the stream ends).",
        ["method", "route"],
        registry=registry,
    )
    app.state.metrics_registry = registry

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            template = _template(request)
            requests.labels(request.method, template, str(status)).inc()
            latency.labels(request.method, template).observe(time.perf_counter() - started)

    @app.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics (viewer)",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
            **ERRORS,
        },
    )
    def metrics(_who: Annotated[Identity, Depends(require(Role.VIEWER))]) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
