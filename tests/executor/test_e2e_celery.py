"""The end-to-end flows, unchanged, on the Celery executor with PostgreSQL: the real CLI submits to
a real ``shipyard worker`` through our own redis-server. The same tests run on the local executor
with SQLite in tests/e2e/test_demo_flow.py and tests/e2e/test_queue_flow.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import needs_bwrap
from tests.e2e import test_demo_flow as demo
from tests.e2e import test_queue_flow as queue
from tests.executor.conftest import Cluster

pytestmark = [pytest.mark.slow, needs_bwrap]

# Every flow of both modules: a flow added there runs here too.
FLOWS = [
    flow
    for module in (demo, queue)
    for name, flow in sorted(vars(module).items())
    if name.startswith("test_") and callable(flow)
]


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.__name__.removeprefix("test_"))
def test_e2e_flow_on_celery_with_postgresql(
    flow: Callable[[Path, str], None],
    cluster: Cluster,
    index_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in cluster.env.items():
        if name.startswith("SHIPYARD_"):
            monkeypatch.setenv(name, value)
    cluster.start_worker(concurrency=2, log="e2e")

    # The CLI's home is tmp_path/"home"; the workers share the cluster's. Merges from both (the
    # workers' and an approval's in the CLI) are serialised by the store's lock.
    flow(tmp_path, index_url)

    from shipyard.store import Store

    with Store.open(cluster.store_url) as store:  # the runs went through PostgreSQL
        assert store.list_runs(limit=10)
