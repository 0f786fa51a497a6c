"""History cannot be rewritten: not through the Store's API, nor by SQL sent to the database."""

from __future__ import annotations

import inspect

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store

TASK = Task(blueprint="deps", repo="/srv/repos/app", title="update requests")


def _run_with_events(store: Store) -> str:
    run_id = store.create_run(TASK)
    store.append(run_id, EventType.NODE_STARTED, {"node": "prepare"})
    return run_id


def test_the_store_api_offers_no_way_to_change_history() -> None:
    public = {name for name, _ in inspect.getmembers(Store) if not name.startswith("_")}
    assert public == {
        "open",
        "close",
        "create_run",
        "append",
        "events",
        "state",
        "get_run",
        "list_runs",
    }


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data_json = '{}' WHERE run_id = :run_id",
        "UPDATE events SET seq = seq + 100",
        "DELETE FROM events WHERE run_id = :run_id",
        "DELETE FROM events",
    ],
)
def test_the_database_refuses_to_update_or_delete_events(store: Store, statement: str) -> None:
    run_id = _run_with_events(store)
    before = store.events(run_id)

    with (
        pytest.raises(SQLAlchemyError, match="events are append-only"),
        store.engine.begin() as conn,
    ):
        conn.execute(text(statement), {"run_id": run_id})

    assert store.events(run_id) == before


def test_postgresql_refuses_to_truncate_events(postgres_url: str) -> None:
    with Store.open(postgres_url) as store:
        run_id = _run_with_events(store)
        with (
            pytest.raises(SQLAlchemyError, match="events are append-only"),
            store.engine.begin() as conn,
        ):
            conn.execute(text("TRUNCATE events"))
        assert len(store.events(run_id)) == 2


def test_inserting_events_directly_still_works(store: Store) -> None:
    # The triggers guard history, not the log's growth: the store appends with plain INSERTs.
    run_id = _run_with_events(store)
    store.append(run_id, EventType.LOG, {"message": "more"})
    assert [e.seq for e in store.events(run_id)] == [1, 2, 3]
