"""Graceful shutdown: SIGTERM to a ``shipyard worker`` in the middle of a node lets the node finish
and hands the run on; the worker exits 0, and another worker completes the run, which merges once."""

from __future__ import annotations

import signal
import time

import pytest

from scenario import make_repo  # type: ignore[import-not-found]
from shipyard.events import EventType
from shipyard.executor.celery import CeleryExecutor
from shipyard.model import RunStatus
from shipyard.store import Store
from shipyard.store.leases import Leases
from tests.conftest import needs_bwrap
from tests.executor.conftest import Cluster, docs_task, merges_of

pytestmark = [pytest.mark.slow, needs_bwrap]

STOP_WITHIN = 240.0
"""Seconds a terminated worker may take: the rest of one verify node, with room for a busy host."""


def nodes(store: Store, run_id: str, kind: EventType) -> list[str]:
    return [str(e.data["node"]) for e in store.events(run_id) if e.type == kind]


def test_sigterm_mid_node_finishes_the_node_and_another_worker_completes_the_run(
    cluster: Cluster, index_url: str
) -> None:
    repo = make_repo(cluster.tmp / "repo")
    store = Store.open(cluster.store_url)
    try:
        executor = CeleryExecutor(store=store, home=cluster.home, settings=cluster.settings)
        run_id = executor.submit(docs_task(repo, cluster.tmp, index_url, note="shutdown"))
        first = cluster.start_worker(log="terminated")
        deadline = time.monotonic() + 180
        while "verify" not in nodes(store, run_id, EventType.NODE_STARTED):
            assert time.monotonic() < deadline, cluster.logs()
            assert first.poll() is None, cluster.logs()
            time.sleep(0.1)

        first.send_signal(signal.SIGTERM)  # to the worker alone, as Kubernetes or `kill` does
        assert first.wait(timeout=STOP_WITHIN) == 0, cluster.logs()

        # The node it was executing finished; the run was handed on, not left to its lease.
        assert nodes(store, run_id, EventType.NODE_FINISHED)[-1] == "verify"
        assert nodes(store, run_id, EventType.NODE_STARTED)[-1] == "verify"
        assert Leases(store).active() == [(run_id, None, None)]

        cluster.start_worker(log="successor")
        cluster.wait_done(store, [run_id])
        state = store.state(run_id)
        assert state.status is RunStatus.MERGED, cluster.logs()
        assert merges_of(repo, run_id) == [state.delivered_commit]
        assert nodes(store, run_id, EventType.NODE_STARTED).count("verify") == 1
        assert not [
            e for e in store.events(run_id) if "resuming at node" in str(e.data.get("message"))
        ]
    finally:
        store.close()
