"""Concurrent appends, from threads sharing a store and from separate stores on one database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store

WRITERS = 6
APPENDS = 15


def test_concurrent_appends_keep_seq_contiguous_and_unique(store: Store, store_url: str) -> None:
    run_id = store.create_run(Task(blueprint="deps", repo="/srv/repos/app"))
    # A second store on one database stands in for another process: it shares no lock in memory.
    with Store.open(store_url) as second:
        stores = [store, second]

        def write(writer: int) -> list[int]:
            target = stores[writer % 2]
            return [
                target.append(run_id, EventType.LOG, {"writer": writer, "n": n}).seq
                for n in range(APPENDS)
            ]

        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            returned = list(pool.map(write, range(WRITERS)))

    events = store.events(run_id)
    total = 1 + WRITERS * APPENDS
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert sorted(seq for seqs in returned for seq in seqs) == list(range(2, total + 1))
    for writer, seqs in enumerate(returned):
        mine = [e for e in events if e.data.get("writer") == writer]
        # Each writer's events are stored in the order it appended them, under the seqs it was told.
        assert [e.data["n"] for e in mine] == list(range(APPENDS))
        assert [e.seq for e in mine] == seqs


def test_concurrent_runs_are_created_with_distinct_ids(store: Store) -> None:
    task = Task(blueprint="deps", repo="/srv/repos/app")
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(lambda _: store.create_run(task), range(40)))
    assert len(set(ids)) == 40
    assert {s.run_id for s in store.list_runs(limit=100)} == set(ids)
