"""Leases, tickets and checkpoints: how many workers share runs without losing or repeating one.

A run executed by workers has one ``leases`` row. Every message that may advance it carries a
*ticket*; taking the lease consumes every ticket issued so far, so a message delivered twice (or a
stale one a dead worker left unacknowledged) finds nothing to do. The holder renews ``expires_at``
while it works; once that passes, the run is *stalled* and the sweeper issues a new ticket.
Checkpoints keep each finished node's results, so a run resumes after its last finished node.

Every write is one transaction, retried when the connection is lost; the ones whose retry could
find their own earlier commit (the answer lost with the connection) recognise it and report what
that commit did: registering, taking and handing on a lease.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update

from shipyard.failpoints import cut_connection
from shipyard.store import database
from shipyard.store.store import Store
from shipyard.store.tables import checkpoints, leases

T = TypeVar("T")


class Taken(enum.Enum):
    """What came of asking for a run's lease with a ticket."""

    TAKEN = "taken"  # the caller holds the lease now
    STALE = "stale"  # the ticket was consumed already (or the run is done): drop the message
    BUSY = "busy"  # the repository has as many nodes executing as it may: try again later


@dataclass(frozen=True)
class Lease:
    """A run's lease as one worker holds it."""

    run_id: str
    owner: str
    repo: str


@dataclass(frozen=True)
class Checkpoint:
    """What a run held after the node at ``index`` finished."""

    index: int
    node: str
    data: bytes


class Leases:
    """The lease and checkpoint records of ``store``'s runs; every method is one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def register(self, run_id: str, repo: str) -> int:
        """Put a new run under lease control, queued; the ticket of its first message."""
        now = _now()

        def insert_row(conn: Connection) -> int:
            row = _locked(conn, run_id)
            if row is not None and row.ticket == 1 and row.consumed == 0:
                return 1  # this registration, committed by a try whose answer was lost
            conn.execute(
                insert(leases).values(
                    run_id=run_id, repo=repo, ticket=1, consumed=0, owner=None, node=None,
                    expires_at=None, queued_at=now, done=False,
                )
            )  # fmt: skip
            return 1

        return self._write(f"queueing run {run_id}", insert_row)

    def acquire(
        self, run_id: str, ticket: int, *, owner: str, seconds: float, repo_limit: int
    ) -> Taken:
        """Take the run's lease with ``ticket`` unless it is stale or the repository is at its limit."""

        def take(conn: Connection) -> Taken:
            row = _locked(conn, run_id)
            now = _now()
            if row is None or row.done:
                return Taken.STALE
            if row.owner == owner and ticket <= row.consumed and _utc(row.expires_at) > now:
                return Taken.TAKEN  # this owner took it with this ticket; the answer was lost
            if ticket <= row.consumed:
                return Taken.STALE
            if row.owner is not None and row.expires_at is not None and _utc(row.expires_at) > now:
                return Taken.STALE  # someone holds it; it issues the next ticket itself
            if conn.dialect.name == "postgresql":  # count and take as one step per repository
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": zlib.crc32(row.repo.encode()) - 2**31},
                )
            running = conn.execute(
                select(func.count())
                .select_from(leases)
                .where(
                    leases.c.repo == row.repo,
                    leases.c.owner.is_not(None),
                    leases.c.expires_at > now,
                    leases.c.run_id != run_id,
                )
            ).scalar_one()
            if running >= repo_limit:
                return Taken.BUSY
            conn.execute(
                update(leases)
                .where(leases.c.run_id == run_id)
                .values(
                    owner=owner, node=None, consumed=row.ticket, queued_at=None,
                    expires_at=now + timedelta(seconds=seconds),
                )
            )  # fmt: skip
            return Taken.TAKEN

        return self._write(f"taking the lease of run {run_id}", take)

    def renew(self, lease: Lease, *, seconds: float, node: str | None = None) -> bool:
        """Extend the lease; False when this owner no longer holds it (another worker took over)."""
        values: dict[str, object] = {"expires_at": _now() + timedelta(seconds=seconds)}
        if node is not None:
            values["node"] = node

        def extend(conn: Connection) -> bool:
            done = conn.execute(
                update(leases)
                .where(leases.c.run_id == lease.run_id, leases.c.owner == lease.owner)
                .values(**values)
            )
            return done.rowcount == 1

        return self._write(f"renewing the lease of run {lease.run_id}", extend)

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease.owner`` still holds the run's lease and it has not expired."""
        row = self._read(
            f"reading the lease of run {lease.run_id}",
            lambda conn: conn.execute(
                select(leases).where(leases.c.run_id == lease.run_id)
            ).first(),
        )
        return (
            row is not None
            and row.owner == lease.owner
            and row.expires_at is not None
            and _utc(row.expires_at) > _now()
        )

    def hand_off(self, lease: Lease) -> int | None:
        """Give the lease up with a new ticket for the next message; None if no longer held."""

        def give(conn: Connection) -> int | None:
            row = _locked(conn, lease.run_id)
            if row is None or row.done:
                return None
            if row.owner is None and row.ticket == row.consumed + 1 and row.queued_at is not None:
                # Handed on since the last take, and nobody took it since: by this hand-off,
                # whose answer was lost (or by a sweep after it expired, whose message carries
                # the same ticket, so at most one of the two messages does anything).
                return int(row.ticket)
            if row.owner != lease.owner:
                return None
            conn.execute(
                update(leases)
                .where(leases.c.run_id == lease.run_id)
                .values(ticket=row.ticket + 1, owner=None, node=None, expires_at=None,
                        queued_at=_now())
            )  # fmt: skip
            return int(row.ticket) + 1

        return self._write(f"handing off run {lease.run_id}", give)

    def expire(self, lease: Lease) -> None:
        """Give the lease back at once without a message: the next sweep requeues the run."""

        def now_expired(conn: Connection) -> None:
            conn.execute(
                update(leases)
                .where(leases.c.run_id == lease.run_id, leases.c.owner == lease.owner)
                .values(expires_at=_now())
            )

        self._write(f"releasing the lease of run {lease.run_id}", now_expired)

    def finish(self, lease: Lease) -> bool:
        """Mark the run done: no message advances it any more."""

        def mark(conn: Connection) -> bool:
            done = conn.execute(
                update(leases)
                .where(leases.c.run_id == lease.run_id, leases.c.owner == lease.owner)
                .values(done=True, owner=None, node=None, expires_at=None, queued_at=None)
            )
            return done.rowcount == 1

        return self._write(f"finishing run {lease.run_id}", mark)

    def stalled(self, *, queued_for: float) -> list[str]:
        """Runs whose holder stopped renewing, or queued longer than ``queued_for`` seconds."""
        now = _now()
        query = (
            select(leases.c.run_id)
            .where(
                leases.c.done.is_(False),
                or_(
                    and_(leases.c.owner.is_not(None), leases.c.expires_at < now),
                    and_(
                        leases.c.owner.is_(None),
                        leases.c.queued_at < now - timedelta(seconds=queued_for),
                    ),
                ),
            )
            .order_by(leases.c.run_id)
        )
        rows = self._read("looking for stalled runs", lambda conn: conn.execute(query).all())
        return [r.run_id for r in rows]

    def reissue(self, run_id: str, *, queued_for: float) -> int | None:
        """A new ticket for a stalled run (its holder is gone or its message lost), or None."""

        def again(conn: Connection) -> int | None:
            row = _locked(conn, run_id)
            now = _now()
            if row is None or row.done:
                return None
            expired = row.owner is not None and _utc(row.expires_at) < now
            lost = (
                row.owner is None
                and row.queued_at is not None
                and _utc(row.queued_at) < now - timedelta(seconds=queued_for)
            )
            if not (expired or lost):
                return None  # someone took it, or handed it on, since the sweep looked
            conn.execute(
                update(leases)
                .where(leases.c.run_id == run_id)
                .values(ticket=row.ticket + 1, owner=None, node=None, expires_at=None,
                        queued_at=now)
            )  # fmt: skip
            return int(row.ticket) + 1

        return self._write(f"requeueing run {run_id}", again)

    def managed(self, run_id: str) -> bool:
        """Whether workers still own the run's progress (registered and not done)."""
        query = select(leases.c.done).where(leases.c.run_id == run_id)
        row = self._read(
            f"reading the lease of run {run_id}", lambda conn: conn.execute(query).first()
        )
        return row is not None and not row.done

    def active(self) -> list[tuple[str, str | None, str | None]]:
        """(run id, owner, node) of every run not done, for status views."""
        query = (
            select(leases.c.run_id, leases.c.owner, leases.c.node)
            .where(leases.c.done.is_(False))
            .order_by(leases.c.run_id)
        )
        rows = self._read("listing leases", lambda conn: conn.execute(query).all())
        return [(r.run_id, r.owner, r.node) for r in rows]

    # --- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, run_id: str, index: int, node: str, data: bytes) -> None:
        """Keep what the run held after node ``index``; later checkpoints of the run are dropped."""

        def save(conn: Connection) -> None:
            conn.execute(
                delete(checkpoints).where(
                    checkpoints.c.run_id == run_id, checkpoints.c.node_index >= index
                )
            )
            conn.execute(
                insert(checkpoints).values(
                    run_id=run_id, node_index=index, node=node, created_at=_now(), data=data
                )
            )

        self._write(f"saving the checkpoint of run {run_id} after {node}", save)

    def checkpoint(self, run_id: str, *, upto: int) -> Checkpoint | None:
        """The newest checkpoint at or before node ``upto``."""
        query = (
            select(checkpoints)
            .where(checkpoints.c.run_id == run_id, checkpoints.c.node_index <= upto)
            .order_by(checkpoints.c.node_index.desc())
            .limit(1)
        )
        row = self._read(
            f"reading the checkpoint of run {run_id}", lambda conn: conn.execute(query).first()
        )
        if row is None:
            return None
        return Checkpoint(index=row.node_index, node=row.node, data=bytes(row.data))

    def _read(self, action: str, body: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.store._read(action) as conn:
                return body(conn)

        return database.retrying(self.store.engine, action, once)

    def _write(self, action: str, body: Callable[[Connection], T]) -> T:
        def once() -> T:
            with self.store._connection() as conn:
                with conn.begin():
                    result = body(conn)
                cut_connection("store.after_lease_commit", conn)
            return result

        with database.translate_errors(self.store.engine, action):
            return database.retrying(self.store.engine, action, once)


def _locked(conn: Connection, run_id: str) -> Any:
    return conn.execute(select(leases).where(leases.c.run_id == run_id).with_for_update()).first()


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


__all__ = ["Checkpoint", "Lease", "Leases", "Taken"]
