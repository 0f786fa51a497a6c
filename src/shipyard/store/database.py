"""How the store reaches its database: URLs, engines, SQLite settings, migrations, error mapping.

SQLite is the default (a file under the shipyard home); PostgreSQL is used the same way by URL.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)

from shipyard.errors import StoreError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "shipyard_schema_version"
HEADS = frozenset({"0002_service", "0003_leases", "0004_append_keys"})
"""The newest revisions under ``migrations/versions`` (tests/store keeps this in step with them). A
store already at exactly these opens without loading Alembic and its scripts: every command opens
the store, and most find it current."""
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option naming the statement that opens a SQLite transaction. Writers ask for
# BEGIN IMMEDIATE so that two writers queue on the busy timeout instead of failing half-way.
SQLITE_BEGIN = "shipyard_sqlite_begin"
# Any fixed number: PostgreSQL serialises concurrent migrations on this advisory lock.
_PG_MIGRATION_LOCK = 0x5A1B_7A2D
# A lost PostgreSQL connection (server restarted, connection terminated, failover) is retried
# with growing pauses for about this long before the error reaches the caller.
RETRY_SECONDS = 60.0
_RETRY_FIRST_PAUSE = 0.1
_RETRY_MAX_PAUSE = 5.0

T = TypeVar("T")


def default_url(home: Path | None = None) -> str:
    """``sqlite:///<home>/shipyard.db``; home is ``$SHIPYARD_HOME`` or ``./.shipyard`` (created)."""
    base = home or Path(os.environ.get("SHIPYARD_HOME") or Path.cwd() / ".shipyard")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the shipyard home {base}: {exc.strerror}. "
            "Set SHIPYARD_HOME to a writable directory."
        ) from exc
    return f"sqlite:///{base.resolve() / 'shipyard.db'}"


def parse_url(url: str) -> URL:
    """The URL with the driver shipyard ships for PostgreSQL filled in when none is named."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"the store URL {url!r} is not a database URL. Use sqlite:///path/to/shipyard.db "
            "or postgresql+psycopg://user@host:5432/database."
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def connect(url: str) -> Engine:
    """An engine for ``url``, with SQLite set up for concurrent use (WAL, busy timeout)."""
    parsed = parse_url(url)
    shown = redact(parsed)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"the store URL {shown} names {parsed.get_backend_name()!r}; shipyard's store runs on "
            "sqlite or postgresql."
        )
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        options["pool_pre_ping"] = True  # a restarted server must not fail the next call
    try:
        engine = create_engine(parsed, **options)
    except ImportError as exc:
        raise StoreError(
            f"the database driver {exc.name!r} for {shown} is not installed. Install it; for "
            "postgresql+psycopg URLs that is `pip install 'shipyard[postgres]'`."
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot use the store URL {shown}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the driver: it would BEGIN lazily, too late for locking,
    # and never around DDL. _sqlite_begin then opens every transaction itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get(SQLITE_BEGIN, "BEGIN"))


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; safe when several processes open at once."""
    with translate_errors(engine, "opening the store"), engine.connect() as conn:
        if current_revisions(conn) == HEADS:
            return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("version_table", VERSION_TABLE)
    with translate_errors(engine, "opening the store"), engine.connect() as conn:
        conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")


def current_revisions(conn: Connection) -> frozenset[str]:
    """The revisions the store's schema is at; empty for a store never migrated."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return frozenset()
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(str(row[0]) for row in rows)


def retrying(engine: Engine, action: str, body: Callable[[], T]) -> T:
    """``body()``, tried again with backoff while PostgreSQL is unreachable (errors untranslated).

    Each try is its own transaction. The server may have committed a try whose answer was lost
    with the connection, so a retried write must recognise its own earlier commit: events carry an
    append key for that (``Store.append``). SQLite waits on its busy timeout instead and is never
    retried here.
    """
    deadline = time.monotonic() + RETRY_SECONDS
    pause = _RETRY_FIRST_PAUSE
    while True:
        try:
            return body()
        except (DBAPIError, StoreError) as exc:
            # translate_errors inside ``body`` keeps the driver's error as the cause
            cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
            if not isinstance(cause, DBAPIError) or not _transient(engine, cause):
                raise
            if time.monotonic() + pause > deadline:
                raise
            log.warning("%s: %s; trying again in %.1f s", action, _one_line(cause.orig), pause)
            time.sleep(pause)
            pause = min(pause * 2, _RETRY_MAX_PAUSE)


def _transient(engine: Engine, exc: DBAPIError) -> bool:
    if engine.dialect.name != "postgresql":
        return False
    return exc.connection_invalidated or isinstance(exc, OperationalError)


@contextmanager
def translate_errors(engine: Engine, action: str) -> Iterator[None]:
    """Turn database errors into StoreError messages that say what to do."""
    try:
        yield
    except OperationalError as exc:
        detail = _one_line(exc.orig)
        if "locked" in detail or "busy" in detail:
            hint = "another shipyard process kept the store busy for too long; try again"
        elif engine.dialect.name == "sqlite":
            hint = "check that the store's directory exists and is writable, or set SHIPYARD_HOME"
        else:
            hint = "check that the database server is running and the store URL is right"
        raise StoreError(
            f"{action} failed on {redact(engine.url)}: {detail} {hint[0].upper()}{hint[1:]}."
        ) from exc
    except IntegrityError as exc:
        raise StoreError(
            f"{action} was refused by {redact(engine.url)}: {_one_line(exc.orig)} "
            "Nothing was written."
        ) from exc
    except SQLAlchemyError as exc:
        raise StoreError(
            f"{action} failed on {redact(engine.url)}: {_one_line(exc)} "
            "Check the store URL and that its schema was created by this version of shipyard."
        ) from exc


def _one_line(error: BaseException | None) -> str:
    """A driver's message on one line, ending in punctuation so that advice can follow it."""
    words = " ".join(str(error).split()) or type(error).__name__
    return words if words[-1] in ".?!" else f"{words}."


def redact(url: URL | str) -> str:
    """The URL as it may be shown: without its password."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparsable store URL>"
    return parsed.render_as_string(hide_password=True)
