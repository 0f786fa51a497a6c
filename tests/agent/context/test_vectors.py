"""Both vector backends, for real: sqlite-vec in a file and pgvector in PostgreSQL give the same
ranking, keep what they stored, and say what to do when they cannot be used."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from shipyard.agent.context import CommitTree
from shipyard.agent.context.retrieval import Retriever
from shipyard.agent.context.vectors import (
    PgVectors,
    SqliteVectors,
    VectorsUnavailable,
    open_vectors,
    pg_conninfo,
)
from shipyard.errors import StoreError
from tests.agent.context.conftest import LOCAL_PG, QUERIES, Counting


def test_sqlite_vec_and_pgvector_rank_the_same(
    embedder: Counting, pgvector_url: str, small_repo: tuple[Path, str], tmp_path: Path
) -> None:
    tree = CommitTree.at(*small_repo)
    lite = Retriever(embedder, SqliteVectors(tmp_path / "retrieval.db"))
    pg = Retriever(embedder, PgVectors(pgvector_url))
    try:
        assert lite.index(tree).embedded == pg.index(tree).embedded > 0
        for query in [*QUERIES, "parse a date", "compare secrets in constant time"]:
            a, b = lite.search(tree, query, k=8), pg.search(tree, query, k=8)
            assert [(m.path, m.start, m.end) for m in a] == [(m.path, m.start, m.end) for m in b]
            assert [m.score for m in a] == pytest.approx([m.score for m in b], abs=1e-4)
        assert pg.index(tree).embedded == 0  # the vectors stayed in PostgreSQL
    finally:
        lite.close()
        pg.close()
    with psycopg.connect(pgvector_url) as db:
        [(count,)] = db.execute("SELECT count(*) FROM retrieval_files").fetchall()
        [(kind,)] = db.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = 'retrieval_vectors'::regclass AND attname = 'embedding'"
        ).fetchall()
    assert (count, kind) == (6, "vector")


def test_the_store_url_picks_the_backend(pgvector_url: str, tmp_path: Path) -> None:
    lite = open_vectors(None, tmp_path)
    assert lite.backend == "sqlite-vec"
    assert (tmp_path / "retrieval.db").is_file()
    lite.close()
    sqlalchemy_url = pgvector_url.replace("postgresql://", "postgresql+psycopg://")
    pg = open_vectors(sqlalchemy_url, tmp_path)
    assert pg.backend == "pgvector"
    pg.close()
    assert pg_conninfo("postgresql+psycopg://u:p%40ss@h:5/db") == "postgresql://u:p%40ss@h:5/db"


def test_postgresql_without_pgvector_is_refused_with_what_to_install() -> None:
    name = "shipyard_retrieval_novector"
    try:
        with psycopg.connect(LOCAL_PG, autocommit=True, connect_timeout=5) as admin:
            available = admin.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).fetchall()
            if available:
                pytest.skip("the local PostgreSQL has pgvector: nothing to refuse")
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({exc})")
    try:
        with pytest.raises(VectorsUnavailable, match=r"postgresql-<version>-pgvector"):
            PgVectors(LOCAL_PG.rsplit("/", 1)[0] + f"/{name}")
    finally:
        with psycopg.connect(LOCAL_PG, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_an_unusable_sqlite_cache_names_the_file_and_the_fix(tmp_path: Path) -> None:
    broken = tmp_path / "retrieval.db"
    broken.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match=r"retrieval\.db cannot be opened.*delete it"):
        SqliteVectors(broken)
