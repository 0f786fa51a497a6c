"""Reads the service needs that the run store does not offer: filtered pages of runs, every run's
events at once (for metrics), and the global event log by position (for the live stream)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select

from shipyard.events import Event, RunState, fold
from shipyard.model import RunStatus
from shipyard.store import Store, codec
from shipyard.store.tables import events as events_table
from shipyard.store.tables import runs as runs_table
from shipyard.web.records import reading

_PAGE = 200


@dataclass(frozen=True)
class RunFilter:
    status: RunStatus | None = None
    repo: str | None = None  # the repository's path, as runs record it
    blueprint: str | None = None
    source: str | None = None
    requested_by: str | None = None


@dataclass(frozen=True)
class RunPage:
    runs: list[RunState]
    next_cursor: str | None  # the last run id of this page when more may follow


def runs_page(store: Store, where: RunFilter, *, limit: int, before: str | None) -> RunPage:
    """Runs newest first matching ``where``, at most ``limit``, after the run id ``before``."""
    query = select(runs_table.c.id, runs_table.c.created_at).order_by(
        runs_table.c.created_at.desc(), runs_table.c.id.desc()
    )
    for column, value in (
        (runs_table.c.repo, where.repo),
        (runs_table.c.blueprint, where.blueprint),
        (runs_table.c.source, where.source),
        (runs_table.c.requested_by, where.requested_by),
    ):
        if value is not None:
            query = query.where(column == value)
    found: list[RunState] = []
    with reading(store.engine, "listing runs") as conn:
        if before is not None:
            cursor = conn.execute(
                select(runs_table.c.id, runs_table.c.created_at).where(runs_table.c.id == before)
            ).first()
            if cursor is None:
                return RunPage(runs=[], next_cursor=None)
            query = query.where(_after(cursor.created_at, cursor.id))
        more = True
        page = query
        while len(found) <= limit and more:
            rows = conn.execute(page.limit(_PAGE)).all()
            more = len(rows) == _PAGE
            by_run = _events_of(conn, [r.id for r in rows])
            for r in rows:
                state = fold(by_run[r.id])
                if where.status is None or state.status is where.status:
                    found.append(state)
            if rows:
                page = query.where(_after(rows[-1].created_at, rows[-1].id))
    has_more = len(found) > limit
    shown = found[:limit]
    return RunPage(runs=shown, next_cursor=shown[-1].run_id if has_more and shown else None)


def _after(created_at: datetime, run_id: str):  # type: ignore[no-untyped-def]
    return or_(
        runs_table.c.created_at < created_at,
        and_(runs_table.c.created_at == created_at, runs_table.c.id < run_id),
    )


def _events_of(conn, run_ids: list[str]) -> dict[str, list[Event]]:  # type: ignore[no-untyped-def]
    found: dict[str, list[Event]] = {run_id: [] for run_id in run_ids}
    if not run_ids:
        return found
    rows = conn.execute(
        select(events_table)
        .where(events_table.c.run_id.in_(run_ids))
        .order_by(events_table.c.run_id, events_table.c.seq)
    ).all()
    for r in rows:
        found[r.run_id].append(_event(r))
    return found


def _event(row) -> Event:  # type: ignore[no-untyped-def]
    return Event(
        run_id=row.run_id,
        seq=row.seq,
        type=row.type,
        at=codec.utc(row.at),
        data=codec.loads(row.data_json),
    )


def every_run(store: Store) -> list[list[Event]]:
    """Every run's events, one list per run, oldest run first (for metrics over the installation)."""
    found: dict[str, list[Event]] = {}
    with reading(store.engine, "reading every run's events") as conn:
        rows = conn.execute(
            select(events_table).order_by(events_table.c.run_id, events_table.c.seq)
        ).all()
    for r in rows:
        found.setdefault(r.run_id, []).append(_event(r))
    return sorted(found.values(), key=lambda events: events[0].at)


def log_after(store: Store, position: int, *, limit: int = 500) -> list[tuple[int, Event]]:
    """Events of every run recorded after ``position`` in the log, with their positions."""
    with reading(store.engine, "reading the event log") as conn:
        rows = conn.execute(
            select(events_table)
            .where(events_table.c.id > position)
            .order_by(events_table.c.id)
            .limit(limit)
        ).all()
    return [(int(r.id), _event(r)) for r in rows]


def log_position(store: Store) -> int:
    """The position of the newest event in the log (0 when empty)."""
    with reading(store.engine, "reading the event log") as conn:
        rows = conn.execute(select(events_table.c.id).order_by(events_table.c.id.desc()).limit(1))
        value = rows.scalar()
    return int(value or 0)
