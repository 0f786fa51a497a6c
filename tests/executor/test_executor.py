"""Choosing an executor by name, the stepper's reading of a run's progress, and a worker that
cannot reach its broker."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shipyard.blueprints import get_blueprint
from shipyard.errors import ConfigError
from shipyard.events import Event
from shipyard.executor import (
    Executor,
    ExecutorSettings,
    LocalExecutor,
    executor_from_settings,
)
from shipyard.executor.celery import shown_url
from shipyard.executor.stepper import progress
from shipyard.store import Store
from tests.conftest import shipyard_cli
from tests.executor.conftest import free_port


def events(*pairs: tuple[str, dict[str, Any]]) -> list[Event]:
    now = datetime.now(UTC)
    first = Event(run_id="r", seq=1, type="run.created", at=now, data={"task": {}})
    return [first] + [
        Event(run_id="r", seq=i + 2, type=kind, at=now, data=data)
        for i, (kind, data) in enumerate(pairs)
    ]


def test_executors_are_chosen_by_name_and_unknown_names_list_the_valid_ones(
    tmp_path: Path,
) -> None:
    with Store.open(home=tmp_path) as store:
        local = executor_from_settings(store=store, home=tmp_path, settings=ExecutorSettings())
        assert isinstance(local, LocalExecutor)
        assert isinstance(local, Executor)
        with pytest.raises(ConfigError, match=r"Unknown executor 'k8s'.*celery, local"):
            executor_from_settings(
                store=store, home=tmp_path, settings=ExecutorSettings(executor="k8s")
            )


def test_settings_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    settings = ExecutorSettings.from_env(
        {"SHIPYARD_EXECUTOR": "celery", "SHIPYARD_REPO_CONCURRENCY": "3"}
    )
    assert (settings.executor, settings.repo_concurrency) == ("celery", 3)
    with pytest.raises(ConfigError, match="SHIPYARD_LEASE_SECONDS"):
        ExecutorSettings.from_env({"SHIPYARD_LEASE_SECONDS": "0"})


def test_progress_resumes_after_the_last_finished_node() -> None:
    deps = get_blueprint("deps")
    names = [s.name for s in deps.steps]
    fresh = progress(deps, events())
    assert (fresh.next_index, fresh.started_again) == (0, False)
    midway = progress(
        deps,
        events(
            ("node.started", {"node": names[0]}),
            ("node.finished", {"node": names[0]}),
            ("node.started", {"node": names[1]}),
        ),
    )
    assert (midway.next_index, midway.finished_index, midway.started_again) == (1, 0, True)


def test_progress_ends_on_failure_and_recovers_a_stop_that_was_not_recorded() -> None:
    deps = get_blueprint("deps")
    first = deps.steps[0].name
    failed = progress(deps, events(("node.started", {"node": first}), ("node.failed", {})))
    assert failed.next_index is None
    stop = {"event": "run.noop", "data": {"reason": "nothing to do"}}
    stopped = progress(
        deps,
        events(("node.started", {"node": first}), ("node.finished", {"node": first, "stop": stop})),
    )
    assert stopped.next_index is None
    assert stopped.stop == stop
    recorded = progress(
        deps,
        events(
            ("node.finished", {"node": first, "stop": stop}),
            ("run.noop", {"reason": "nothing to do"}),
            ("log", {"report": "/r.md"}),
        ),
    )
    assert recorded.stop is None
    assert recorded.reported


def test_local_submit_returns_at_once_and_the_run_completes_in_the_background(
    tmp_path: Path,
) -> None:
    from shipyard.model import Task

    with Store.open(home=tmp_path) as store:
        executor = LocalExecutor(store=store, home=tmp_path)
        # A repository that does not exist: the run fails in its first node, recorded.
        run_id = executor.submit(Task(blueprint="deps", repo=str(tmp_path / "missing")))
        executor.shutdown()
        state = store.state(run_id)
        assert state.status.value == "failed"
        assert any("report" in e.data for e in store.events(run_id))


def test_a_worker_without_its_broker_says_so_in_one_line(tmp_path: Path) -> None:
    done = shipyard_cli(
        tmp_path / "home",
        "worker",
        env={"SHIPYARD_BROKER_URL": f"redis://:pw@127.0.0.1:{free_port()}/0"},
        ok=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "cannot reach the broker at redis://:***@127.0.0.1" in " ".join(done.stderr.split())
    assert "pw@" not in done.stderr


def test_a_worker_without_its_store_says_so_in_one_line(tmp_path: Path) -> None:
    done = shipyard_cli(
        tmp_path / "home",
        "worker",
        env={"SHIPYARD_STORE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"},
        ok=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert "check that the database server is running" in " ".join(done.stderr.split()).lower()


def test_passwords_are_not_shown() -> None:
    assert shown_url("amqp://u:secret@h:5672//") == "amqp://u:***@h:5672//"
    assert shown_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
