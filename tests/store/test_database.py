"""Opening the store: where it lives, its migrations, and errors that say what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from shipyard.errors import StoreError
from shipyard.model import Task
from shipyard.store import Store
from shipyard.store.database import (
    HEADS,
    MIGRATIONS,
    VERSION_TABLE,
    connect,
    current_revisions,
    parse_url,
    redact,
)
from shipyard.store.tables import metadata

TASK = Task(blueprint="deps", repo="/srv/repos/app")


def test_default_store_is_a_sqlite_file_in_the_given_home(tmp_path: Path) -> None:
    home = tmp_path / "not" / "yet" / "there"
    with Store.open(home=home) as store:
        run_id = store.create_run(TASK)
    db = home / "shipyard.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM runs").fetchall() == [(run_id,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_default_home_is_shipyard_home_then_dot_shipyard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHIPYARD_HOME", raising=False)
    Store.open().close()
    assert (tmp_path / ".shipyard" / "shipyard.db").is_file()

    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "elsewhere"))
    Store.open().close()
    assert (tmp_path / "elsewhere" / "shipyard.db").is_file()


def migration_heads() -> set[str]:
    """Every head of the migration graph: independent branches all upgrade."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    assert "0003_leases" in heads
    return heads


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert set(context.get_current_heads()) == migration_heads()
        assert compare_metadata(context, metadata) == []
    tables = set(inspect(store.engine).get_table_names())
    assert {"runs", "events", VERSION_TABLE} <= tables


def test_opening_twice_migrates_once(store_url: str) -> None:
    with Store.open(store_url) as first:
        run_id = first.create_run(TASK)
    with Store.open(store_url) as second, second.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert set(context.get_current_heads()) == migration_heads()
        assert second.get_run(run_id).run_id == run_id


def test_the_heads_a_current_store_is_recognised_by_are_the_migrations_heads() -> None:
    assert migration_heads() == HEADS, (
        "a migration was added: put the new heads in shipyard.store.database.HEADS"
    )


def test_a_store_left_at_an_older_revision_is_brought_up_when_opened(store_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_table", VERSION_TABLE)
    engine = connect(store_url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003_leases")  # as an older shipyard left it
    with engine.connect() as conn:
        assert current_revisions(conn) == {"0003_leases"}
        assert "append_key" not in {c["name"] for c in inspect(conn).get_columns("events")}
    engine.dispose()

    with Store.open(store_url) as store, store.engine.connect() as conn:
        assert current_revisions(conn) == HEADS
        assert "append_key" in {c["name"] for c in inspect(conn).get_columns("events")}
        assert store.get_run(store.create_run(TASK)).task["repo"] == TASK.repo


def test_a_directory_that_cannot_hold_the_store_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="SHIPYARD_HOME"):
        Store.open(home=blocker / "home")
    with pytest.raises(StoreError, match="writable"):
        Store.open(f"sqlite:///{tmp_path / 'missing' / 'shipyard.db'}")


def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    # Port 1 on localhost refuses connections at once.
    with pytest.raises(StoreError, match="server is running") as caught:
        Store.open("postgresql://shipyard:s3cret@127.0.0.1:1/shipyard")
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url", "not a database URL"),
        ("mysql://root@127.0.0.1/shipyard", "runs on sqlite or postgresql"),
        ("postgresql+pg8000://root@127.0.0.1/shipyard", "'pg8000'.*is not installed"),
    ],
)
def test_unusable_urls_say_what_to_use(url: str, says: str) -> None:
    with pytest.raises(StoreError, match=says):
        Store.open(url)


def test_postgresql_urls_without_a_driver_use_psycopg() -> None:
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("sqlite:///x.db").drivername == "sqlite"


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
