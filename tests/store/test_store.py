"""The store's API on SQLite and PostgreSQL: creating runs, appending events, reading state back."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shipyard.errors import NotFound, StoreError
from shipyard.events import EventType
from shipyard.model import Action, RunStatus, Task
from shipyard.store import Store

TASK = Task(
    blueprint="deps",
    repo="/srv/repos/app",
    params={"package": "requests", "pins": ["2.31.0", "2.32.3"]},
    title="update requests",
    source="api",
    requested_by="ana",
)


def test_create_run_records_the_task_and_its_first_event(store: Store) -> None:
    before = datetime.now(UTC)
    run_id = store.create_run(TASK)

    [created] = store.events(run_id)
    assert created.seq == 1
    assert created.type == EventType.RUN_CREATED
    assert created.data == {"task": asdict(TASK)}
    assert created.at.tzinfo is not None
    assert before - timedelta(seconds=1) <= created.at <= datetime.now(UTC) + timedelta(seconds=1)
    state = store.state(run_id)
    assert state.status is RunStatus.QUEUED
    assert Task(**state.task) == TASK
    assert state.created_at == created.at


def test_create_run_with_a_chosen_id_refuses_it_twice(store: Store) -> None:
    assert store.create_run(TASK, run_id="nightly-42") == "nightly-42"
    with pytest.raises(StoreError, match="already exists"):
        store.create_run(TASK, run_id="nightly-42")
    assert len(store.events("nightly-42")) == 1


def test_create_run_refuses_ids_unsafe_in_a_branch_name(store: Store) -> None:
    for bad in ["", "../x", "a b", "-lead", "x" * 65, "a..b", "run~1", "a/b"]:
        with pytest.raises(StoreError, match="not usable"):
            store.create_run(TASK, run_id=bad)
    assert store.list_runs() == []


def test_append_numbers_events_without_gaps(store: Store) -> None:
    run_id = store.create_run(TASK)
    other = store.create_run(TASK)
    first = store.append(run_id, EventType.NODE_STARTED, {"node": "prepare"})
    store.append(other, EventType.LOG, {"message": "interleaved"})
    second = store.append(run_id, "node.finished", {"node": "prepare", "summary": "ok"})

    assert (first.seq, second.seq) == (2, 3)
    assert [e.seq for e in store.events(run_id)] == [1, 2, 3]
    assert [e.seq for e in store.events(other)] == [1, 2]
    assert store.events(run_id)[1:] == [first, second]


@dataclass(frozen=True)
class _Point:
    x: int


def test_append_stores_json_and_returns_what_reads_back(store: Store) -> None:
    run_id = store.create_run(TASK)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = store.append(
        run_id,
        EventType.DECISION_MADE,
        {
            "action": Action.REVIEW,
            "at": when,
            "path": Path("src/app.py"),
            "point": _Point(3),
            "pair": (1, 2),
            "text": "naïve ✓",
            "nested": {"ok": True, "none": None, "rate": 0.95},
        },
    )

    expected = {
        "action": "REVIEW",
        "at": "2026-01-02T03:04:05+00:00",
        "path": "src/app.py",
        "point": {"x": 3},
        "pair": [1, 2],
        "text": "naïve ✓",
        "nested": {"ok": True, "none": None, "rate": 0.95},
    }
    assert event.data == expected
    assert store.events(run_id)[-1] == event


def test_append_refuses_values_that_are_not_json(store: Store) -> None:
    run_id = store.create_run(TASK)
    with pytest.raises(TypeError, match="object cannot be stored"):
        store.append(run_id, EventType.LOG, {"message": object()})
    assert len(store.events(run_id)) == 1


def test_append_to_a_missing_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="shipyard runs list"):
        store.append("20990101-000000-abcdef", EventType.LOG, {"message": "lost"})


def test_append_refuses_an_unknown_event_type(store: Store) -> None:
    run_id = store.create_run(TASK)
    with pytest.raises(ValueError, match=r"unknown event type 'node.exploded'.*run\.created"):
        store.append(run_id, "node.exploded", {})
    assert len(store.events(run_id)) == 1


def test_events_after_a_seq_and_of_a_missing_run(store: Store) -> None:
    run_id = store.create_run(TASK)
    for n in range(3):
        store.append(run_id, EventType.LOG, {"message": str(n)})

    assert [e.data["message"] for e in store.events(run_id, after=2)] == ["1", "2"]
    assert store.events(run_id, after=4) == []
    with pytest.raises(NotFound, match="shipyard runs list"):
        store.events("nope")
    with pytest.raises(NotFound):
        store.state("nope")


def test_state_folds_a_whole_run(store: Store) -> None:
    run_id = store.create_run(TASK)
    store.append(run_id, EventType.NODE_STARTED, {"node": "change"})
    store.append(
        run_id,
        EventType.CHANGE_COMMITTED,
        {"branch": f"shipyard/{run_id}", "commit": "c" * 40, "base": "b" * 40},
    )
    store.append(
        run_id,
        EventType.GATE_FINISHED,
        {"gate": "tests", "phase": "change", "passed": True, "summary": "12 passed", "facts": {}},
    )
    store.append(
        run_id,
        EventType.DECISION_MADE,
        {
            "action": "MERGE",
            "reasons": [{"rule": "type", "action": "MERGE", "message": "dependency update"}],
            "inputs": {},
            "policy": "seed",
        },
    )
    store.append(
        run_id,
        EventType.DELIVERY_MERGED,
        {"target": "main", "commit": "m" * 40, "branch": f"shipyard/{run_id}"},
    )
    store.append(run_id, EventType.LOG, {"message": "report written"})

    state = store.state(run_id)
    assert state.status is RunStatus.MERGED
    assert state.finished
    assert (state.branch, state.base_commit, state.change_commit) == (
        f"shipyard/{run_id}",
        "b" * 40,
        "c" * 40,
    )
    assert state.gates["change"]["tests"]["passed"] is True
    assert state.action == "MERGE"
    assert (state.delivered_target, state.delivered_commit) == ("main", "m" * 40)
    assert state.last_seq == 7
    assert state.updated_at == store.events(run_id)[-1].at


def test_get_run_by_id_or_unique_prefix(store: Store) -> None:
    a = store.create_run(TASK, run_id="20260101-000000-aaa111")
    store.create_run(TASK, run_id="20260101-000000-aab222")
    store.create_run(TASK, run_id="20260102-000000-ccc333")

    assert store.get_run(a).run_id == a
    assert store.get_run("20260101-000000-aaa").run_id == a
    assert store.get_run("20260102").run_id == "20260102-000000-ccc333"
    assert store.get_run(a).task == asdict(TASK)


def test_get_run_with_an_ambiguous_prefix_lists_the_candidates(store: Store) -> None:
    store.create_run(TASK, run_id="20260101-000000-aaa111")
    store.create_run(TASK, run_id="20260101-000000-aab222")

    with pytest.raises(NotFound) as caught:
        store.get_run("20260101-000000-aa")
    message = str(caught.value)
    assert "20260101-000000-aaa111" in message
    assert "20260101-000000-aab222" in message
    assert "give more of the run id" in message


def test_get_run_that_does_not_exist_suggests_listing_runs(store: Store) -> None:
    store.create_run(TASK, run_id="20260101-000000-aaa111")
    for missing in ("20991231", "2026%", "2026____", ""):
        with pytest.raises(NotFound, match=re.escape("shipyard runs list")):
            store.get_run(missing)


def _finish(store: Store, run_id: str, event: EventType, data: dict[str, str]) -> None:
    store.append(run_id, EventType.NODE_STARTED, {"node": "deliver"})
    store.append(run_id, event, data)


def test_list_runs_newest_first_with_limit_status_and_repo(store: Store) -> None:
    other_repo = Task(blueprint="submit", repo="/srv/repos/other")
    ids = [store.create_run(TASK if n % 2 == 0 else other_repo) for n in range(6)]
    _finish(store, ids[0], EventType.RUN_HALTED, {"reason": "forbidden path"})
    _finish(store, ids[3], EventType.RUN_HALTED, {"reason": "pass rate"})
    _finish(store, ids[4], EventType.REVIEW_REQUESTED, {"branch": "b", "target": "main"})

    assert [s.run_id for s in store.list_runs()] == ids[::-1]
    assert [s.run_id for s in store.list_runs(limit=2)] == [ids[5], ids[4]]
    assert store.list_runs(limit=0) == []
    halted = store.list_runs(status=RunStatus.HALTED)
    assert [(s.run_id, s.reason) for s in halted] == [
        (ids[3], "pass rate"),
        (ids[0], "forbidden path"),
    ]
    assert [s.run_id for s in store.list_runs(status=RunStatus.HALTED, limit=1)] == [ids[3]]
    assert [s.run_id for s in store.list_runs(repo="/srv/repos/other")] == [ids[5], ids[3], ids[1]]
    assert [
        s.run_id for s in store.list_runs(repo="/srv/repos/other", status=RunStatus.QUEUED)
    ] == [
        ids[5],
        ids[1],
    ]
    assert [s.status for s in store.list_runs(status=RunStatus.AWAITING_REVIEW)] == [
        RunStatus.AWAITING_REVIEW
    ]
    assert store.list_runs(status=RunStatus.MERGED) == []


def test_list_runs_by_status_looks_past_the_first_page(store: Store) -> None:
    # The matching runs are the oldest, behind more than one page of newer runs.
    oldest = [store.create_run(TASK) for _ in range(3)]
    for run_id in oldest:
        _finish(store, run_id, EventType.RUN_NOOP, {"reason": "up to date"})
    for _ in range(205):
        store.create_run(TASK)

    found = store.list_runs(status=RunStatus.NOOP, limit=2)
    assert [s.run_id for s in found] == [oldest[2], oldest[1]]
    assert len(store.list_runs(status=RunStatus.QUEUED, limit=500)) == 205


def test_a_reopened_store_keeps_its_runs(store_url: str) -> None:
    with Store.open(store_url) as first:
        run_id = first.create_run(TASK)
        first.append(run_id, EventType.RUN_NOOP, {"reason": "nothing to update"})
    with Store.open(store_url) as again:
        state = again.get_run(run_id)
    assert state.status is RunStatus.NOOP
    assert state.reason == "nothing to update"
