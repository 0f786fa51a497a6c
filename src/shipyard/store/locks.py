"""Locks kept by the store's database, for work that must be serialised across hosts.

On PostgreSQL a lock is a session-level advisory lock on a dedicated connection: it is held for as
long as that session lives, and a holder that dies (``kill -9``, a lost host) ends its session, so
the lock is released without anyone having to clean up. SQLite stores are local to one host and
use the callers' file locks instead (``shared_locks`` says which).
"""

from __future__ import annotations

import hashlib
from types import TracebackType

from sqlalchemy import Connection, text

from shipyard.store import database
from shipyard.store.store import Store


def shared_locks(store: Store) -> bool:
    """Whether ``store`` can hold locks that every host sees (PostgreSQL)."""
    return store.engine.dialect.name == "postgresql"


def advisory_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of ``name``."""
    digest = hashlib.sha256(f"shipyard-lock\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """A PostgreSQL advisory lock named ``name``; ``try_acquire`` until it returns True.

    Used as a context manager: leaving it ends the dedicated session, which releases the lock
    (also when the connection is already broken).
    """

    def __init__(self, store: Store, name: str) -> None:
        if not shared_locks(store):
            raise ValueError(f"advisory locks need a PostgreSQL store, not {store.engine.url}")
        self.store, self.name, self.key = store, name, advisory_key(name)
        self._conn: Connection | None = None
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if no other session holds it; never waits."""
        action = f"taking the lock {self.name!r}"
        with database.translate_errors(self.store.engine, action):
            if self._conn is None:
                self._conn = database.retrying(self.store.engine, action, self._open)
            taken = self._conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar_one()
        self.held = bool(taken)
        return self.held

    def _open(self) -> Connection:
        # Autocommit: the session holds the lock, not a transaction left idle for the whole
        # critical section.
        return self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def __enter__(self) -> AdvisoryLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._conn is not None:
            # Discarded, not returned to the pool: ending the session releases the lock even if
            # an unlock could not be sent.
            self._conn.invalidate()
            self._conn.close()
            self._conn = None
        self.held = False


__all__ = ["AdvisoryLock", "advisory_key", "shared_locks"]
