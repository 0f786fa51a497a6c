"""Schedules start their runs exactly once per due time, even with two servers ticking at once, on
SQLite and on PostgreSQL; their next due time is visible in the API."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.app import App, deps_tasks
from shipyard.events import RunState
from shipyard.model import Task
from shipyard.store import Store
from shipyard.web.registry import Registry
from shipyard.web.scheduler import Scheduler, latest_due, next_due
from shipyard.web.settings import ServeSettings
from tests.conftest import EXAMPLES, example_index
from tests.store.conftest import postgres_url  # noqa: F401  (a fixture)
from tests.web.conftest import Server

sys.path.insert(0, str(EXAMPLES))
from scenario import make_repo


class RecordingExecutor:
    """An executor that records the tasks it is given instead of executing them."""

    name = "recording"

    def __init__(self) -> None:
        self.tasks: list[Task] = []
        self._lock = threading.Lock()

    def submit(self, task: Task) -> str:
        with self._lock:
            self.tasks.append(task)
            return f"run-{len(self.tasks)}"

    def run(self, task: Task) -> RunState:
        raise AssertionError("schedules submit runs; they never wait for them")


@pytest.fixture(scope="module")
def index_url() -> Iterator[str]:
    from shipyard.deps.localindex import serve

    with serve(example_index()) as index:
        yield index.url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("postgres_url"))


def test_two_schedulers_start_a_due_schedule_exactly_once(
    tmp_path: Path, store_url: str, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    servers = []
    for name in ("one", "two"):  # two servers: their own engines on one database
        app = App(tmp_path / name)
        store = Store.open(store_url)
        executor = RecordingExecutor()
        settings = ServeSettings(home=tmp_path / name, scheduler=False)
        servers.append((Scheduler(Registry(store), executor, app, settings), executor, store, app))
    registry = servers[0][0].registry
    registry.add_repo(name="example", path=repo, by="admin", index_url=index_url)
    schedule = registry.add_schedule(
        repo="example",
        blueprint="deps",
        cron="*/5 * * * *",
        request={"blueprint": "deps", "repo": "example"},
        by="admin",
    )
    later = schedule.created_at + timedelta(minutes=12)
    try:
        barrier = threading.Barrier(2)
        results: dict[int, object] = {}

        def tick(i: int) -> None:
            barrier.wait()
            results[i] = servers[i][0].tick(now=later)

        threads = [threading.Thread(target=tick, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        started = [task for _, executor, _, _ in servers for task in executor.tasks]
        # Missed due times collapse into one: the latest, started once, by one of the two.
        planned = [
            t.title for t in deps_tasks(servers[0][3].plan_deps(repo=repo, index_url=index_url))
        ]
        assert planned
        assert sorted(t.title for t in started) == sorted(planned)
        assert {t.source for t in started} == {"schedule"}
        assert {t.requested_by for t in started} == {f"schedule:{schedule.id}"}
        assert sorted(len(r) for r in results.values()) == [0, 1]  # type: ignore[arg-type]
        (claim,) = registry.claims(schedule.id)
        assert claim["due_at"] == latest_due("*/5 * * * *", schedule.created_at, later)
        assert claim["run_ids"] == [f"run-{i}" for i in range(1, len(planned) + 1)]

        # Ticking again at the same time starts nothing; the next due time starts once more.
        assert servers[0][0].tick(now=later) == []
        assert servers[1][0].tick(now=later) == []
        assert len(servers[1][0].tick(now=later + timedelta(minutes=5))) == 1
        assert sum(len(e.tasks) for _, e, _, _ in servers) == 2 * len(planned)
    finally:
        for _, _, store, app in servers:
            store.close()
            app.close()


def test_a_disabled_or_broken_schedule_starts_nothing(tmp_path: Path, index_url: str) -> None:
    repo = make_repo(tmp_path / "repo")
    with App(tmp_path / "home") as app:
        executor = RecordingExecutor()
        registry = Registry(app.store)
        scheduler = Scheduler(registry, executor, app, ServeSettings(home=app.home))
        registry.add_repo(name="example", path=repo, by="admin", index_url=index_url)
        off = registry.add_schedule(
            repo="example", blueprint="deps", cron="* * * * *",
            request={"blueprint": "deps", "repo": "example"}, by="admin",
        )  # fmt: skip
        registry.update_schedule(off.id, enabled=False)
        broken = registry.add_schedule(
            repo="example", blueprint="submit", cron="* * * * *",
            request={"blueprint": "submit", "repo": "example"}, by="admin",
        )  # fmt: skip
        now = datetime.now(UTC) + timedelta(minutes=3)
        started = scheduler.tick(now=now)
        assert started == [(broken.id, [])]
        assert executor.tasks == []
        (claim,) = registry.claims(broken.id)
        assert "patch" in claim["error"]  # the stored request is invalid: said so, once
        assert registry.claims(off.id) == []
        assert scheduler.next_run(registry.schedule(off.id)) is None


@settings(max_examples=50, deadline=None)
@given(
    cron=st.sampled_from(["* * * * *", "*/5 * * * *", "0 6 * * 1", "30 2 1 * *", "15 */3 * * *"]),
    since=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
    gap=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
)
def test_latest_due_is_the_last_due_time_not_after_now(
    cron: str, since: datetime, gap: timedelta
) -> None:
    since = since.replace(tzinfo=UTC)
    now = since + gap
    due = latest_due(cron, since, now)
    if due is None:
        assert next_due(cron, since) > now
    else:
        assert since < due <= now
        assert next_due(cron, due) > now


def test_schedules_over_the_api_show_when_they_are_next_due(server: Server) -> None:
    task = {"blueprint": "deps", "repo": "example"}
    bad = server.post("/api/schedules", json={"cron": "every monday", "task": task})
    assert bad.status_code == 422
    assert "five-field cron" in bad.json()["error"]["message"]
    unknown = server.post(
        "/api/schedules", json={"cron": "0 6 * * 1", "task": {**task, "repo": "nope"}}
    )
    assert unknown.status_code == 404

    made = server.post("/api/schedules", json={"cron": "0 6 * * 1", "task": task})
    assert made.status_code == 201, made.text
    schedule = made.json()
    due = datetime.fromisoformat(schedule["next_run_at"])
    assert due.weekday() == 0
    assert (due.hour, due.minute) == (6, 0)
    assert due > datetime.now(UTC)
    assert schedule["id"] in [s["id"] for s in server.get("/api/schedules").json()]

    off = server.client.patch(
        f"/api/schedules/{schedule['id']}", json={"enabled": False}, headers=server.auth("admin")
    )
    assert off.json()["next_run_at"] is None
    in_use = server.client.delete("/api/repos/example", headers=server.auth("admin"))
    assert in_use.status_code == 422
    gone = server.client.delete(f"/api/schedules/{schedule['id']}", headers=server.auth("admin"))
    assert gone.status_code == 204
    assert server.get(f"/api/schedules/{schedule['id']}").status_code == 404
