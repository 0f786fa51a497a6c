"""The run store: runs and their append-only events, on SQLite by default or PostgreSQL at scale.

There is no way to change or remove an event through this API, and the database refuses it too.
One engine per store, a connection per call: a store may be shared by threads.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from shipyard.errors import NotFound, StoreError
from shipyard.events import Event, EventType, RunState, fold
from shipyard.failpoints import cut_connection
from shipyard.model import RunStatus, Task
from shipyard.redaction import redact
from shipyard.store import codec, database
from shipyard.store.tables import events as events_table
from shipyard.store.tables import runs as runs_table

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ATTEMPTS = 5  # for a generated run id that collides, or a seq another writer took first
_LIST_PAGE = 200

T = TypeVar("T")


def new_run_id(now: datetime | None = None) -> str:
    """Short, unique, sortable by creation time (to the second), and safe in a git branch name."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


class Store:
    """Runs and their events. Open with ``Store.open()``; close with ``close()``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str | None = None, *, home: Path | None = None) -> Store:
        """Open the store at ``url`` (default ``<home>/shipyard.db``), migrated to this version."""
        engine = database.connect(url or database.default_url(home))
        try:
            database.migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------

    def create_run(self, task: Task, run_id: str | None = None) -> str:
        """Record a new run and its ``run.created`` event in one transaction; return its id."""
        if run_id is not None and not _RUN_ID.fullmatch(run_id):
            raise StoreError(
                f"run id {run_id!r} is not usable: give 1 to 64 letters, digits, '-' or '_', "
                "starting with a letter or digit, or leave it out to get a new one."
            )
        task_data = redact(codec.to_json(asdict(task)))
        with database.translate_errors(self.engine, "creating a run"):
            for _attempt in range(_ATTEMPTS):
                chosen = run_id or new_run_id()
                key = _new_key()
                try:
                    database.retrying(
                        self.engine,
                        "creating a run",
                        lambda: self._insert_run(chosen, task, task_data, key),  # noqa: B023
                    )
                except IntegrityError as exc:
                    if self._created_with(chosen, key):
                        return chosen  # a retry after a commit whose answer was lost
                    if run_id is not None:
                        raise StoreError(
                            f"a run {run_id} already exists; leave the run id out to get a new one."
                        ) from exc
                    continue  # two runs drew the same id in the same second: draw again
                return chosen
        raise StoreError("could not find a free run id; check the system clock and try again.")

    def _insert_run(self, run_id: str, task: Task, task_data: dict[str, Any], key: str) -> None:
        now = datetime.now(UTC)
        with self._connection() as conn:
            with conn.begin():
                conn.execute(
                    insert(runs_table).values(
                        id=run_id,
                        blueprint=task.blueprint,
                        repo=str(task.repo),
                        title=str(task_data.get("title", "")),
                        source=task.source,
                        requested_by=task.requested_by,
                        created_at=now,
                        task_json=codec.dumps(task_data),
                    )
                )
                conn.execute(
                    insert(events_table).values(
                        run_id=run_id,
                        seq=1,
                        type=EventType.RUN_CREATED.value,
                        at=now,
                        data_json=codec.dumps({"task": task_data}),
                        append_key=key,
                    )
                )
            cut_connection("store.after_create_commit", conn)

    def _created_with(self, run_id: str, key: str) -> bool:
        """Whether run ``run_id`` was created by the attempt that chose ``key``."""
        query = select(events_table.c.append_key).where(
            events_table.c.run_id == run_id, events_table.c.seq == 1
        )

        def read() -> bool:
            with self._read(f"looking up run {run_id}") as conn:
                return conn.execute(query).scalar_one_or_none() == key

        return self._retrying_read(f"looking up run {run_id}", read)

    def append(
        self, run_id: str, type_: EventType | str, data: dict[str, Any], *, key: str | None = None
    ) -> Event:
        """Append one event to a run; its ``seq`` follows the run's last one without a gap.

        Idempotent by ``key`` (a fresh one per call when not given): an append that finds an event
        with its key already recorded (the server committed it, but the answer was lost with the
        connection) returns that event instead of writing it again. The same key with a different
        type or data is refused with StoreError.
        """
        kind = _event_type(type_)
        payload = redact(codec.to_json(data))
        append_key = key or _new_key()
        with database.translate_errors(self.engine, f"appending {kind} to run {run_id}"):
            for _attempt in range(_ATTEMPTS):
                try:
                    return database.retrying(
                        self.engine,
                        f"appending {kind} to run {run_id}",
                        lambda: self._insert_event(run_id, kind, payload, append_key),
                    )
                except IntegrityError:
                    continue  # another writer took this seq (one that does not lock): read again
        raise StoreError(
            f"could not append {kind} to run {run_id}: other writers kept taking its next number. "
            "Try again."
        )

    def _insert_event(self, run_id: str, kind: str, payload: dict[str, Any], key: str) -> Event:
        now = datetime.now(UTC)
        with self._connection() as conn:
            with conn.begin():
                # On PostgreSQL this row lock queues appends to one run; on SQLite, BEGIN
                # IMMEDIATE has already queued every writer.
                exists = conn.execute(
                    select(runs_table.c.id)
                    .where(runs_table.c.id == run_id)
                    .with_for_update(key_share=True)
                ).first()
                if exists is None:
                    raise _not_found(run_id)
                earlier = conn.execute(
                    select(events_table).where(
                        events_table.c.run_id == run_id, events_table.c.append_key == key
                    )
                ).first()
                if earlier is not None:
                    return _same_event(earlier, kind, payload, key)
                last = conn.execute(
                    select(func.max(events_table.c.seq)).where(events_table.c.run_id == run_id)
                ).scalar_one()
                seq = int(last or 0) + 1
                conn.execute(
                    insert(events_table).values(
                        run_id=run_id, seq=seq, type=kind, at=now,
                        data_json=codec.dumps(payload), append_key=key,
                    )
                )  # fmt: skip
            cut_connection("store.after_append_commit", conn)
        return Event(run_id=run_id, seq=seq, type=kind, at=now, data=payload)

    # --- reading -------------------------------------------------------------------------------

    def events(self, run_id: str, *, after: int = 0) -> list[Event]:
        """A run's events in order; with ``after``, only those with a higher ``seq``."""

        def read() -> list[Event]:
            with self._read(f"reading the events of run {run_id}") as conn:
                found = _events_of(conn, [run_id], after=after).get(run_id, [])
                if not found and not _exists(conn, run_id):
                    raise _not_found(run_id)
            return found

        return self._retrying_read(f"reading the events of run {run_id}", read)

    def state(self, run_id: str) -> RunState:
        """A run's current state: the fold of its events."""
        return fold(self.events(run_id))

    def get_run(self, run_id: str) -> RunState:
        """A run by its id, or by a prefix of its id that matches no other run."""

        def read() -> RunState:
            with self._read(f"looking up run {run_id}") as conn:
                run = _resolve(conn, run_id)
                return fold(_events_of(conn, [run])[run])

        return self._retrying_read(f"looking up run {run_id}", read)

    def list_runs(
        self, *, limit: int = 50, status: RunStatus | None = None, repo: str | None = None
    ) -> list[RunState]:
        """Runs newest first, at most ``limit``, optionally only in ``status`` or of ``repo``."""
        return self._retrying_read(
            "listing runs", lambda: self._list_runs(limit=limit, status=status, repo=repo)
        )

    def _list_runs(
        self, *, limit: int, status: RunStatus | None, repo: str | None
    ) -> list[RunState]:
        found: list[RunState] = []
        if limit <= 0:
            return found
        newest_first = select(runs_table.c.id, runs_table.c.created_at).order_by(
            runs_table.c.created_at.desc(), runs_table.c.id.desc()
        )
        if repo is not None:
            newest_first = newest_first.where(runs_table.c.repo == repo)
        # Status is derived from events, not stored: fold page after page until enough match.
        page = limit if status is None else max(limit, _LIST_PAGE)
        query = newest_first
        with self._read("listing runs") as conn:
            while len(found) < limit:
                rows = conn.execute(query.limit(page)).all()
                by_run = _events_of(conn, [r.id for r in rows])
                states = (fold(by_run[r.id]) for r in rows)
                found += [s for s in states if status is None or s.status is status]
                if len(rows) < page:
                    break
                last = rows[-1]  # continue after it: stable while new runs are being added
                query = newest_first.where(
                    or_(
                        runs_table.c.created_at < last.created_at,
                        and_(
                            runs_table.c.created_at == last.created_at,
                            runs_table.c.id < last.id,
                        ),
                    )
                )
        return found[:limit]

    # --- transactions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction; callers translate errors, as some of them retry on conflicts."""
        with self._connection() as conn, conn.begin():
            yield conn

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A connection whose transactions (``conn.begin()``) are write transactions."""
        with self.engine.connect() as conn:
            conn.execution_options(**{database.SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            yield conn

    @contextmanager
    def _read(self, action: str) -> Iterator[Connection]:
        # One transaction, so that a read spanning several queries sees one snapshot on SQLite.
        with (
            database.translate_errors(self.engine, action),
            self.engine.connect() as conn,
            conn.begin(),
        ):
            yield conn

    def _retrying_read(self, action: str, body: Callable[[], T]) -> T:
        """``body`` (which reads through ``_read``) tried again while PostgreSQL is unreachable."""
        return database.retrying(self.engine, action, body)


def _events_of(
    conn: Connection, run_ids: Sequence[str], *, after: int = 0
) -> dict[str, list[Event]]:
    rows = conn.execute(
        select(events_table)
        .where(events_table.c.run_id.in_(run_ids), events_table.c.seq > after)
        .order_by(events_table.c.run_id, events_table.c.seq)
    ).all()
    found: dict[str, list[Event]] = {}
    for r in rows:
        found.setdefault(r.run_id, []).append(
            Event(
                run_id=r.run_id,
                seq=r.seq,
                type=r.type,
                at=codec.utc(r.at),
                data=codec.loads(r.data_json),
            )
        )
    return found


def _new_key() -> str:
    return uuid.uuid4().hex


def _same_event(row: Any, kind: str, payload: dict[str, Any], key: str) -> Event:
    """The recorded event ``row`` if it is the one being appended again; else StoreError."""
    data = codec.loads(row.data_json)
    if row.type != kind or data != codec.loads(codec.dumps(payload)):
        raise StoreError(
            f"run {row.run_id} already holds event {row.seq} ({row.type}) with append key "
            f"{key!r}, and this append of {kind} differs from it; nothing was written. Give a "
            "new event a new key."
        )
    return Event(run_id=row.run_id, seq=row.seq, type=row.type, at=codec.utc(row.at), data=data)


def _exists(conn: Connection, run_id: str) -> bool:
    return (
        conn.execute(select(runs_table.c.id).where(runs_table.c.id == run_id)).first() is not None
    )


def _resolve(conn: Connection, prefix: str) -> str:
    """The one run id equal to, or else starting with, ``prefix``."""
    if not prefix:
        raise NotFound("give a run id (or its first characters); `shipyard runs list` shows them.")
    if _exists(conn, prefix):
        return prefix
    ids: Sequence[str] = (
        conn.execute(
            select(runs_table.c.id)
            .where(runs_table.c.id.startswith(prefix, autoescape=True))
            .order_by(runs_table.c.id)
            .limit(11)
        )
        .scalars()
        .all()
    )
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise _not_found(prefix)
    shown = ", ".join(ids[:10]) + (", …" if len(ids) > 10 else "")
    raise NotFound(f"{prefix!r} matches more than one run ({shown}); give more of the run id.")


def _not_found(run_id: str) -> NotFound:
    return NotFound(f"there is no run {run_id!r}; `shipyard runs list` shows the runs there are.")


def _event_type(type_: EventType | str) -> str:
    try:
        return EventType(type_).value
    except ValueError:
        known = ", ".join(t.value for t in EventType)
        raise ValueError(f"unknown event type {type_!r}; known types: {known}") from None
