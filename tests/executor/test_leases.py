"""Leases and tickets on SQLite and PostgreSQL: one holder at a time, duplicates and stale messages
do nothing, a repository's limit holds, stalled runs are found and requeued once."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.failpoints import ENV, rearm
from shipyard.model import Task
from shipyard.store import Store
from shipyard.store.leases import Lease, Leases, Taken


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shipyard.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = Store.open(url)
    try:
        yield opened
    finally:
        opened.close()


def new_run(store: Store, leases: Leases, repo: str = "/srv/app") -> tuple[str, int]:
    run_id = store.create_run(Task(blueprint="deps", repo=repo))
    return run_id, leases.register(run_id, repo)


def test_a_ticket_is_taken_once_and_a_duplicate_finds_nothing(store: Store) -> None:
    leases = Leases(store)
    run_id, ticket = new_run(store, leases)
    assert leases.acquire(run_id, ticket, owner="a", seconds=30, repo_limit=4) is Taken.TAKEN
    assert leases.acquire(run_id, ticket, owner="b", seconds=30, repo_limit=4) is Taken.STALE
    nxt = leases.hand_off(Lease(run_id=run_id, owner="a", repo="/srv/app"))
    assert nxt == ticket + 1
    assert leases.acquire(run_id, ticket, owner="b", seconds=30, repo_limit=4) is Taken.STALE
    assert leases.acquire(run_id, nxt, owner="b", seconds=30, repo_limit=4) is Taken.TAKEN
    # The first holder lost it: it can neither renew nor hand it on.
    assert not leases.renew(Lease(run_id=run_id, owner="a", repo="/srv/app"), seconds=30)
    assert leases.hand_off(Lease(run_id=run_id, owner="a", repo="/srv/app")) is None


def test_the_repository_limit_keeps_further_runs_waiting(store: Store) -> None:
    leases = Leases(store)
    first, t1 = new_run(store, leases)
    second, t2 = new_run(store, leases)
    other, t3 = new_run(store, leases, repo="/srv/other")
    assert leases.acquire(first, t1, owner="a", seconds=30, repo_limit=1) is Taken.TAKEN
    assert leases.acquire(second, t2, owner="b", seconds=30, repo_limit=1) is Taken.BUSY
    assert leases.acquire(other, t3, owner="c", seconds=30, repo_limit=1) is Taken.TAKEN
    assert leases.finish(Lease(run_id=first, owner="a", repo="/srv/app"))
    assert leases.acquire(second, t2, owner="b", seconds=30, repo_limit=1) is Taken.TAKEN


def test_an_expired_lease_is_requeued_once_with_a_ticket_that_invalidates_the_old_one(
    store: Store,
) -> None:
    leases = Leases(store)
    run_id, ticket = new_run(store, leases)
    assert leases.acquire(run_id, ticket, owner="dead", seconds=0.2, repo_limit=4) is Taken.TAKEN
    assert leases.stalled(queued_for=3600) == []
    time.sleep(0.4)
    assert leases.stalled(queued_for=3600) == [run_id]
    again = leases.reissue(run_id, queued_for=3600)
    assert again == ticket + 1
    assert leases.reissue(run_id, queued_for=3600) is None  # a second sweeper finds it queued
    assert leases.acquire(run_id, ticket, owner="x", seconds=30, repo_limit=4) is Taken.STALE
    assert leases.acquire(run_id, again, owner="x", seconds=30, repo_limit=4) is Taken.TAKEN
    assert not leases.holds(Lease(run_id=run_id, owner="dead", repo="/srv/app"))


def test_a_lost_message_is_sent_again_and_whichever_copy_comes_first_wins(store: Store) -> None:
    leases = Leases(store)
    run_id, ticket = new_run(store, leases)
    time.sleep(0.3)
    assert leases.stalled(queued_for=0.1) == [run_id]
    again = leases.reissue(run_id, queued_for=0.1)
    assert again is not None
    # The old copy arrives first after all: it takes the lease and the new copy finds nothing.
    assert leases.acquire(run_id, ticket, owner="a", seconds=30, repo_limit=4) is Taken.TAKEN
    lease = Lease(run_id=run_id, owner="a", repo="/srv/app")
    assert leases.finish(lease)
    assert leases.acquire(run_id, again, owner="b", seconds=30, repo_limit=4) is Taken.STALE
    assert not leases.managed(run_id)


def test_checkpoints_keep_the_newest_up_to_a_node_and_drop_later_ones(store: Store) -> None:
    leases = Leases(store)
    run_id, _ = new_run(store, leases)
    leases.save_checkpoint(run_id, 0, "prepare", b"zero")
    leases.save_checkpoint(run_id, 2, "verify", b"two")
    assert leases.checkpoint(run_id, upto=1).data == b"zero"  # type: ignore[union-attr]
    assert leases.checkpoint(run_id, upto=5).data == b"two"  # type: ignore[union-attr]
    leases.save_checkpoint(run_id, 1, "change", b"one")  # node 1 ran again: node 2's is stale
    saved = leases.checkpoint(run_id, upto=5)
    assert saved is not None
    assert (saved.index, saved.data) == (1, b"one")


def test_lease_writes_whose_answer_was_lost_with_the_connection_report_what_they_did(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with Store.open(postgres_url) as store:
        leases = Leases(store)
        run_id = store.create_run(Task(blueprint="deps", repo="/srv/app"))
        lease = Lease(run_id=run_id, owner="a", repo="/srv/app")
        # The server ends the session right after each of these commits; each is tried again.
        monkeypatch.setenv(ENV, "store.after_lease_commit")
        with caplog.at_level(logging.WARNING, logger="shipyard.store.database"):
            rearm()
            ticket = leases.register(run_id, "/srv/app")
            rearm()
            taken = leases.acquire(run_id, ticket, owner="a", seconds=30, repo_limit=4)
            rearm()
            handed = leases.hand_off(lease)
        monkeypatch.delenv(ENV)
        rearm()
        assert len([r for r in caplog.records if "trying again" in r.getMessage()]) == 3
        assert (ticket, taken, handed) == (1, Taken.TAKEN, 2)
        # Tickets still guard as before: the old one is void, the new one is taken once.
        assert leases.acquire(run_id, 1, owner="b", seconds=30, repo_limit=4) is Taken.STALE
        assert leases.acquire(run_id, 2, owner="b", seconds=30, repo_limit=4) is Taken.TAKEN
        assert leases.acquire(run_id, 2, owner="c", seconds=30, repo_limit=4) is Taken.STALE
        assert leases.hand_off(lease) is None  # "a" no longer holds it
