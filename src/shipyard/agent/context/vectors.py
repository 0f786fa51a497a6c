"""Where chunk vectors are kept between runs: sqlite-vec in ``$SHIPYARD_HOME/retrieval.db`` by
default, pgvector in the store's database when the store is PostgreSQL.

The vectors are a cache derived from committed files, so their tables are created here (``CREATE
... IF NOT EXISTS``), not by the store's migrations; dropping them only costs re-embedding. Three
tables in both backends:

- ``retrieval_vectors``: one vector per model and chunk digest (what was embedded);
- ``retrieval_chunks``: the chunks of a file version (path and blob id) and their digests;
- ``retrieval_files``: the file versions whose chunks are complete (written last).

Search is exact (cosine distance over the chunks of one commit's files), so both backends rank the
same way; at a few thousand chunks per repository it takes milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from shipyard.agent.context.chunks import Chunk
from shipyard.errors import ShipyardError, StoreError

logger = logging.getLogger(__name__)

SQLITE_FILE = "retrieval.db"
BUSY_MS = 30_000

FileKey = tuple[str, str]
"""A file version: its path and git blob id."""


class VectorsUnavailable(ShipyardError):
    """The vector backend cannot be used here (pgvector not installed on the server, say)."""


@dataclass(frozen=True, kw_only=True)
class Match:
    """A stored chunk near the query: where it is and its cosine similarity (1 is the same)."""

    path: str
    start: int
    end: int
    kind: str
    name: str
    score: float


class Vectors(Protocol):
    """A cache of chunk vectors; ``space`` separates models and chunker versions."""

    backend: str

    def indexed(self, space: str, files: Sequence[FileKey]) -> set[FileKey]:
        """Which of ``files`` have their chunks stored."""
        ...

    def known(self, model: str, digests: Sequence[str]) -> set[str]:
        """Which of ``digests`` have a vector for ``model``."""
        ...

    def add(
        self,
        space: str,
        model: str,
        files: Mapping[FileKey, Sequence[Chunk]],
        vectors: Mapping[str, Sequence[float]],
    ) -> None:
        """Store new vectors by digest, then the chunks of ``files``; existing rows are kept."""
        ...

    def search(
        self, space: str, model: str, query: Sequence[float], files: Sequence[FileKey], k: int
    ) -> list[Match]:
        """The ``k`` chunks of ``files`` nearest to ``query``, nearest first."""
        ...

    def close(self) -> None: ...


def _chunk_rows(
    space: str, files: Mapping[FileKey, Sequence[Chunk]]
) -> list[tuple[str, str, str, int, str, int, int, str, str]]:
    return [
        (space, path, blob, seq, c.digest, c.start, c.end, c.kind, c.name)
        for (path, blob), chunks in files.items()
        for seq, c in enumerate(chunks)
    ]


class SqliteVectors:
    """sqlite-vec in one SQLite file (through apsw: Python's own sqlite3 may not load extensions)."""

    backend = "sqlite-vec"

    def __init__(self, path: Path) -> None:
        import apsw
        import sqlite_vec  # type: ignore[import-untyped]

        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = apsw.Connection(str(path))
            self._db.set_busy_timeout(BUSY_MS)
            self._db.enable_load_extension(True)
            self._db.load_extension(sqlite_vec.loadable_path())
            self._db.enable_load_extension(False)
            self._db.execute("PRAGMA journal_mode=WAL")
            with self._db:
                self._db.execute(_SQLITE_SCHEMA)
        except (apsw.Error, OSError) as exc:
            raise StoreError(
                f"the retrieval cache {path} cannot be opened ({exc}); delete it to start afresh "
                "(it only holds vectors shipyard can compute again)."
            ) from exc
        self._serialize = sqlite_vec.serialize_float32

    def indexed(self, space: str, files: Sequence[FileKey]) -> set[FileKey]:
        with self._scope(files):
            rows = self._db.execute(
                "SELECT f.path, f.blob FROM temp.scope s JOIN retrieval_files f"
                " ON f.space = ? AND f.path = s.path AND f.blob = s.blob",
                (space,),
            )
            return {(str(p), str(b)) for p, b in rows}

    def known(self, model: str, digests: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(digests), 500):
            part = digests[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT digest FROM retrieval_vectors WHERE model = ? AND digest IN ({marks})",
                (model, *part),
            )
            found.update(str(d) for (d,) in rows)
        return found

    def add(
        self,
        space: str,
        model: str,
        files: Mapping[FileKey, Sequence[Chunk]],
        vectors: Mapping[str, Sequence[float]],
    ) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO retrieval_vectors (model, digest, embedding) VALUES (?, ?, ?)",
                [(model, d, self._serialize(list(v))) for d, v in vectors.items()],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO retrieval_chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _chunk_rows(space, files),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO retrieval_files VALUES (?, ?, ?, ?)",
                [(space, p, b, len(c)) for (p, b), c in files.items()],
            )

    def search(
        self, space: str, model: str, query: Sequence[float], files: Sequence[FileKey], k: int
    ) -> list[Match]:
        with self._scope(files):
            rows = self._db.execute(
                "SELECT c.path, c.start_line, c.end_line, c.kind, c.name,"
                " vec_distance_cosine(v.embedding, ?) AS distance"
                " FROM temp.scope s"
                " JOIN retrieval_chunks c ON c.space = ? AND c.path = s.path AND c.blob = s.blob"
                " JOIN retrieval_vectors v ON v.model = ? AND v.digest = c.digest"
                " ORDER BY distance, c.path, c.start_line LIMIT ?",
                (self._serialize(list(query)), space, model, k),
            )
            return [_match(row) for row in rows]

    @contextlib.contextmanager
    def _scope(self, files: Sequence[FileKey]) -> Iterator[None]:
        # Keyed, so the search can walk the scope and look each file's chunks up by index.
        self._db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS scope (path TEXT, blob TEXT, PRIMARY KEY (path, blob))"
        )
        with self._db:
            self._db.execute("DELETE FROM temp.scope")
            self._db.executemany("INSERT OR IGNORE INTO temp.scope VALUES (?, ?)", files)
        try:
            yield
        finally:
            self._db.execute("DELETE FROM temp.scope")

    def close(self) -> None:
        self._db.close()


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS retrieval_vectors (
    model TEXT NOT NULL, digest TEXT NOT NULL, embedding BLOB NOT NULL,
    PRIMARY KEY (model, digest));
CREATE TABLE IF NOT EXISTS retrieval_chunks (
    space TEXT NOT NULL, path TEXT NOT NULL, blob TEXT NOT NULL, seq INTEGER NOT NULL,
    digest TEXT NOT NULL, start_line INTEGER NOT NULL, end_line INTEGER NOT NULL,
    kind TEXT NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (space, path, blob, seq));
CREATE TABLE IF NOT EXISTS retrieval_files (
    space TEXT NOT NULL, path TEXT NOT NULL, blob TEXT NOT NULL, chunks INTEGER NOT NULL,
    PRIMARY KEY (space, path, blob));
"""


class PgVectors:
    """pgvector in a PostgreSQL database (the store's), reached with psycopg."""

    backend = "pgvector"

    def __init__(self, conninfo: str) -> None:
        import psycopg
        from pgvector.psycopg import register_vector

        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(conninfo, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"the retrieval cache in PostgreSQL cannot be reached: {exc}") from exc
        try:
            with self._db.transaction():
                # One creator at a time: concurrent CREATE ... IF NOT EXISTS can still collide.
                self._db.execute("SELECT pg_advisory_xact_lock(hashtext('shipyard.retrieval'))")
                self._db.execute("CREATE EXTENSION IF NOT EXISTS vector")
                for statement in _PG_SCHEMA:
                    self._db.execute(statement)
            register_vector(self._db)
        except psycopg.Error as exc:
            self._db.close()
            raise VectorsUnavailable(
                f"pgvector cannot be used in this PostgreSQL database ({str(exc).strip()}); "
                "install the extension on the server (Debian: postgresql-<version>-pgvector) "
                "or let a superuser run `CREATE EXTENSION vector` there."
            ) from exc

    def indexed(self, space: str, files: Sequence[FileKey]) -> set[FileKey]:
        paths, blobs = _columns(files)
        rows = self._db.execute(
            "SELECT f.path, f.blob FROM unnest(%s::text[], %s::text[]) AS s(path, blob)"
            " JOIN retrieval_files f ON f.space = %s AND f.path = s.path AND f.blob = s.blob",
            (paths, blobs, space),
        ).fetchall()
        self._db.commit()
        return {(str(p), str(b)) for p, b in rows}

    def known(self, model: str, digests: Sequence[str]) -> set[str]:
        rows = self._db.execute(
            "SELECT digest FROM retrieval_vectors WHERE model = %s AND digest = ANY(%s)",
            (model, list(digests)),
        ).fetchall()
        self._db.commit()
        return {str(d) for (d,) in rows}

    def add(
        self,
        space: str,
        model: str,
        files: Mapping[FileKey, Sequence[Chunk]],
        vectors: Mapping[str, Sequence[float]],
    ) -> None:
        from pgvector import Vector

        with self._db.transaction(), self._db.cursor() as cur:
            cur.executemany(
                "INSERT INTO retrieval_vectors (model, digest, embedding) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                [(model, d, Vector(list(v))) for d, v in vectors.items()],
            )
            cur.executemany(
                "INSERT INTO retrieval_chunks VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                _chunk_rows(space, files),
            )
            cur.executemany(
                "INSERT INTO retrieval_files VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(space, p, b, len(c)) for (p, b), c in files.items()],
            )

    def search(
        self, space: str, model: str, query: Sequence[float], files: Sequence[FileKey], k: int
    ) -> list[Match]:
        from pgvector import Vector

        paths, blobs = _columns(files)
        rows = self._db.execute(
            "SELECT c.path, c.start_line, c.end_line, c.kind, c.name,"
            " v.embedding <=> %s AS distance"
            " FROM unnest(%s::text[], %s::text[]) AS s(path, blob)"
            " JOIN retrieval_chunks c ON c.space = %s AND c.path = s.path AND c.blob = s.blob"
            " JOIN retrieval_vectors v ON v.model = %s AND v.digest = c.digest"
            " ORDER BY distance, c.path, c.start_line LIMIT %s",
            (Vector(list(query)), paths, blobs, space, model, k),
        ).fetchall()
        self._db.commit()
        return [_match(row) for row in rows]

    def close(self) -> None:
        self._db.close()


_PG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS retrieval_vectors (model text NOT NULL, digest text NOT NULL,"
    " embedding vector NOT NULL, PRIMARY KEY (model, digest))",
    "CREATE TABLE IF NOT EXISTS retrieval_chunks (space text NOT NULL, path text NOT NULL,"
    " blob text NOT NULL, seq integer NOT NULL, digest text NOT NULL,"
    " start_line integer NOT NULL, end_line integer NOT NULL, kind text NOT NULL,"
    " name text NOT NULL, PRIMARY KEY (space, path, blob, seq))",
    "CREATE TABLE IF NOT EXISTS retrieval_files (space text NOT NULL, path text NOT NULL,"
    " blob text NOT NULL, chunks integer NOT NULL, PRIMARY KEY (space, path, blob))",
)


def _columns(files: Sequence[FileKey]) -> tuple[list[str], list[str]]:
    return [p for p, _ in files], [b for _, b in files]


def _match(row: Any) -> Match:
    path, start, end, kind, name, distance = row
    return Match(
        path=str(path), start=int(start), end=int(end), kind=str(kind), name=str(name),
        score=round(1.0 - float(distance), 6),
    )  # fmt: skip


def open_vectors(store_url: str | None, home: Path) -> Vectors:
    """pgvector in the store's database when that is PostgreSQL, else sqlite-vec under ``home``.

    Raises VectorsUnavailable when the PostgreSQL server lacks pgvector; the caller decides whether
    to fall back to the SQLite cache.
    """
    if store_url is not None and store_url.startswith(("postgresql", "postgres:")):
        return PgVectors(pg_conninfo(store_url))
    return SqliteVectors(home / SQLITE_FILE)


def pg_conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://…``)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


__all__ = [
    "Match",
    "PgVectors",
    "SqliteVectors",
    "Vectors",
    "VectorsUnavailable",
    "open_vectors",
    "pg_conninfo",
]
