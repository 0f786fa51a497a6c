"""Transactions on the store's engine for the service's own tables (tokens, repos, schedules…).

The run store owns runs and events; the service keeps its records in the same database, written the
same way: one short transaction per call, SQLite writers queued with BEGIN IMMEDIATE.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from shipyard.store import database


@contextmanager
def writing(engine: Engine, action: str) -> Iterator[Connection]:
    """A write transaction; database errors become StoreError naming ``action``."""
    with database.translate_errors(engine, action), engine.connect() as conn:
        conn.execution_options(**{database.SQLITE_BEGIN: "BEGIN IMMEDIATE"})
        with conn.begin():
            yield conn


@contextmanager
def reading(engine: Engine, action: str) -> Iterator[Connection]:
    """A read transaction (one snapshot for several queries)."""
    with database.translate_errors(engine, action), engine.connect() as conn, conn.begin():
        yield conn
