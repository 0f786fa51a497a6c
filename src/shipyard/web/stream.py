"""Live run updates as server-sent events, read from the event log (no other channel exists).

``GET /api/runs/{id}/stream``: the run's events from the start (or after ``Last-Event-ID``, a seq),
then new ones as they are recorded; the stream ends with an ``end`` event once the run finished.
``GET /api/stream``: every run's events from now (or after ``Last-Event-ID``, a log position).
Each SSE ``id`` is what a reconnecting client sends back to resume without gaps or repeats.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from shipyard.app import App
from shipyard.events import Event
from shipyard.redaction import redact
from shipyard.web.api.deps import shipyard
from shipyard.web.api.schemas import ERRORS
from shipyard.web.auth import Role, require
from shipyard.web.queries import log_after, log_position

router = APIRouter(tags=["stream"], dependencies=[Depends(require(Role.VIEWER))], responses=ERRORS)
AppDep = Annotated[App, Depends(shipyard)]
# On PostgreSQL, log positions are handed out before commit, so a later position can become
# visible first: look back this far and skip what was already sent.
_LOOKBACK = 200
_SSE = {"text/event-stream": {"schema": {"type": "string"}}}


def _payload(event: Event) -> str:
    return json.dumps(
        {
            "run_id": event.run_id,
            "seq": event.seq,
            "type": event.type,
            "at": event.at.isoformat(),
            "data": redact(event.data),
        },
        ensure_ascii=False,
    )


def _events_after(app: App, run_id: str, after: int) -> list[Event]:
    return app.store.events(run_id, after=after)


def _resume_from(value: str | None) -> int:
    try:
        return max(0, int(value or 0))
    except ValueError:
        return 0


@router.get(
    "/runs/{run_id}/stream",
    summary="A run's events, live (server-sent events)",
    response_class=EventSourceResponse,
    responses={200: {"content": _SSE, "description": "`event: run-event`, then `event: end`."}},
)
async def run_stream(
    request: Request,
    app: AppDep,
    run_id: str,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    state = await anyio.to_thread.run_sync(app.run, run_id)  # 404 before the stream starts
    poll = request.app.state.settings.stream_poll_seconds

    async def events() -> AsyncIterator[ServerSentEvent]:
        after = _resume_from(last_event_id)
        while True:
            found = await anyio.to_thread.run_sync(_events_after, app, state.run_id, after)
            for event in found:
                after = event.seq
                yield ServerSentEvent(data=_payload(event), event="run-event", id=str(event.seq))
            if not found:
                current = await anyio.to_thread.run_sync(app.store.state, state.run_id)
                if current.finished and current.last_seq <= after:
                    yield ServerSentEvent(
                        data=json.dumps({"run_id": state.run_id, "status": current.status}),
                        event="end",
                    )
                    return
                if await request.is_disconnected():
                    return
                await anyio.sleep(poll)

    return EventSourceResponse(events(), ping=15)


@router.get(
    "/stream",
    summary="Every run's events, live (server-sent events)",
    response_class=EventSourceResponse,
    responses={200: {"content": _SSE, "description": "`event: run-event` for each event."}},
)
async def all_runs_stream(
    request: Request,
    app: AppDep,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> EventSourceResponse:
    poll = request.app.state.settings.stream_poll_seconds
    start = (
        _resume_from(last_event_id)
        if last_event_id is not None
        else await anyio.to_thread.run_sync(log_position, app.store)
    )

    async def events() -> AsyncIterator[ServerSentEvent]:
        position = start
        sent: OrderedDict[int, None] = OrderedDict()
        while True:
            window = max(0, position - _LOOKBACK)
            found = await anyio.to_thread.run_sync(log_after, app.store, window)
            fresh = [(p, e) for p, e in found if p > start and p not in sent]
            for where, event in fresh:
                sent[where] = None
                position = max(position, where)
                yield ServerSentEvent(data=_payload(event), event="run-event", id=str(where))
            while len(sent) > 4 * _LOOKBACK:
                sent.popitem(last=False)
            if not fresh:
                if await request.is_disconnected():
                    return
                await anyio.sleep(poll)

    return EventSourceResponse(events(), ping=15)
