"""The engine records every node, turns user errors into a failed run, and always writes the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.blueprints import Blueprint, RunContext, Step, StopRun, execute, get_blueprint
from shipyard.errors import BlueprintError, PatchError
from shipyard.events import EventType
from shipyard.model import RunStatus, Task
from shipyard.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(home=tmp_path)


def context(store: Store, tmp_path: Path) -> RunContext:
    task = Task(blueprint="test", repo=str(tmp_path), title="t")
    return RunContext(run_id=store.create_run(task), task=task, store=store, home=tmp_path)


def test_nodes_run_in_order_and_each_is_recorded(store: Store, tmp_path: Path) -> None:
    seen: list[str] = []

    def node(name: str) -> Step:
        def run(ctx: RunContext) -> None:
            seen.append(name)
            ctx.values["summary"] = f"did {name}"

        return Step(name, run)

    ctx = context(store, tmp_path)
    execute(Blueprint(name="b", version="1", steps=(node("a"), node("b"))), ctx)
    assert seen == ["a", "b"]
    finished = [e.data for e in store.events(ctx.run_id) if e.type == EventType.NODE_FINISHED]
    assert [(d["node"], d["summary"]) for d in finished] == [("a", "did a"), ("b", "did b")]


def test_a_user_error_fails_the_run_with_its_message_and_stops(
    store: Store, tmp_path: Path
) -> None:
    reports: list[str] = []

    def broken(ctx: RunContext) -> None:
        raise PatchError("x.patch: does not apply")

    def never(ctx: RunContext) -> None:
        raise AssertionError("must not run after a failure")

    ctx = context(store, tmp_path)
    blueprint = Blueprint(
        name="b", version="1", steps=(Step("change", broken), Step("after", never)),
        finish=lambda c: reports.append(c.run_id),
    )  # fmt: skip
    execute(blueprint, ctx)
    state = store.state(ctx.run_id)
    assert state.status is RunStatus.FAILED
    assert state.error == "x.patch: does not apply"
    assert reports == [ctx.run_id]


def test_stop_run_records_its_event_as_the_final_word(store: Store, tmp_path: Path) -> None:
    def nothing(ctx: RunContext) -> None:
        raise StopRun(EventType.RUN_NOOP, {"reason": "every pin is current"})

    ctx = context(store, tmp_path)
    execute(Blueprint(name="b", version="1", steps=(Step("plan", nothing),)), ctx)
    state = store.state(ctx.run_id)
    assert state.status is RunStatus.NOOP
    assert state.reason == "every pin is current"


def test_a_bug_is_recorded_and_then_raised(store: Store, tmp_path: Path) -> None:
    def bug(ctx: RunContext) -> None:
        raise KeyError("oops")

    ctx = context(store, tmp_path)
    with pytest.raises(KeyError):
        execute(Blueprint(name="b", version="1", steps=(Step("x", bug),)), ctx)
    assert store.state(ctx.run_id).status is RunStatus.FAILED


def test_blueprint_registry() -> None:
    assert get_blueprint("deps").name == "deps"
    assert get_blueprint("submit").name == "submit"
    for agent in ("task", "fix-tests", "lint-fix", "ci-fix"):
        blueprint = get_blueprint(agent)
        assert blueprint.name == agent
        assert [s.kind for s in blueprint.steps if s.name == "agent"] == ["agent"]
    valid = "Valid blueprints: agent, ci-fix, deps, fix-tests, lint-fix, submit, task"
    with pytest.raises(BlueprintError, match=valid):
        get_blueprint("nope")
