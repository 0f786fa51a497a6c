"""Appends are idempotent: a write PostgreSQL committed, whose answer was lost with the connection,
is not written again by the retry; the same key with different content is refused."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from shipyard.errors import StoreError
from shipyard.events import EventType
from shipyard.failpoints import CUTS, ENV, cut_connection, rearm
from shipyard.model import Task
from shipyard.store import Store

TASK = Task(blueprint="deps", repo="/srv/repos/app", title="update requests")


def logs_with(store: Store, run_id: str, message: str) -> list[int]:
    return [
        e.seq
        for e in store.events(run_id)
        if e.type == EventType.LOG and e.data.get("message") == message
    ]


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    opened = Store.open(postgres_url)
    try:
        yield opened
    finally:
        opened.close()


def test_an_append_committed_before_the_connection_was_cut_is_recorded_once(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = pg_store.create_run(TASK)
    monkeypatch.setenv(ENV, "store.after_append_commit")
    with caplog.at_level(logging.WARNING, logger="shipyard.store.database"):
        rearm()
        first = pg_store.append(run_id, EventType.LOG, {"message": "once"})
        rearm()
        second = pg_store.append(run_id, EventType.LOG, {"message": "twice"})
    monkeypatch.delenv(ENV)
    rearm()

    # The server really ended the session after each commit, and the store tried again.
    retried = [r for r in caplog.records if "trying again" in r.getMessage()]
    assert len(retried) == 2, [r.getMessage() for r in caplog.records]
    assert "terminating connection" in retried[0].getMessage()
    # Each retry found its own event instead of writing it a second time.
    assert logs_with(pg_store, run_id, "once") == [first.seq] == [2]
    assert logs_with(pg_store, run_id, "twice") == [second.seq] == [3]
    assert [e.seq for e in pg_store.events(run_id)] == [1, 2, 3]


def test_a_run_created_before_the_connection_was_cut_is_created_once(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV, "store.after_create_commit")
    with caplog.at_level(logging.WARNING, logger="shipyard.store.database"):
        rearm()
        run_id = pg_store.create_run(TASK)
    monkeypatch.delenv(ENV)
    rearm()
    assert any("trying again" in r.getMessage() for r in caplog.records)
    assert [r.run_id for r in pg_store.list_runs()] == [run_id]
    assert [e.type for e in pg_store.events(run_id)] == [EventType.RUN_CREATED.value]


def test_the_same_key_twice_is_one_event_and_different_content_under_it_is_refused(
    store: Store,
) -> None:
    run_id = store.create_run(TASK)
    first = store.append(run_id, EventType.LOG, {"message": "m"}, key="k-1")
    again = store.append(run_id, EventType.LOG, {"message": "m"}, key="k-1")
    assert (again.seq, again.data) == (first.seq, first.data)
    with pytest.raises(StoreError, match=r"append key 'k-1'.*differs"):
        store.append(run_id, EventType.LOG, {"message": "other"}, key="k-1")
    with pytest.raises(StoreError, match="differs"):
        store.append(run_id, EventType.NODE_STARTED, {"message": "m"}, key="k-1")
    # Without a key every append is its own event; a key is per run.
    store.append(run_id, EventType.LOG, {"message": "m"})
    store.append(run_id, EventType.LOG, {"message": "m"})
    other = store.create_run(TASK)
    assert store.append(other, EventType.LOG, {"message": "m"}, key="k-1").seq == 2
    assert logs_with(store, run_id, "m") == [2, 3, 4]


def test_cut_points_are_named_and_do_nothing_unless_armed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with store.engine.connect() as conn:
        for name in CUTS:
            cut_connection(name, conn)
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
        with pytest.raises(ValueError, match="add it to CUTS"):
            cut_connection("store.nowhere", conn)
