"""The Celery executor on RabbitMQ: a run submitted through AMQP is executed node by node by a
worker consuming from the broker, and merges once. Its own virtual host (or, where it cannot be
created, its own queue names on the default one) keeps it apart from anything else on the broker."""

from __future__ import annotations

import re
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenario import make_repo  # type: ignore[import-not-found]
from shipyard.blueprints import get_blueprint
from shipyard.executor.celery import CeleryExecutor, check_broker
from shipyard.model import RunStatus
from shipyard.store import Store
from tests.conftest import needs_bwrap
from tests.executor.conftest import Cluster, docs_task, merges_of

pytestmark = [pytest.mark.slow, needs_bwrap]

HOST, PORT = "127.0.0.1", 5672


def rabbitmqctl(*args: str) -> bool:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=False)
    return done.returncode == 0


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """guest/guest on the local RabbitMQ, in a virtual host made for this test when possible."""
    with socket.socket() as s:
        s.settimeout(2)
        if s.connect_ex((HOST, PORT)) != 0:
            pytest.skip(f"no RabbitMQ at {HOST}:{PORT}; start one to test the AMQP broker")
    vhost = f"shipyard-test-{secrets.token_hex(4)}"
    if rabbitmqctl("add_vhost", vhost):
        try:
            assert rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            yield f"amqp://guest:guest@{HOST}:{PORT}/{vhost}"
        finally:
            rabbitmqctl("delete_vhost", vhost)
    else:  # no rights to make one: the cluster's own queue names keep the test apart
        yield f"amqp://guest:guest@{HOST}:{PORT}//"


def test_a_run_completes_through_a_worker_on_rabbitmq(
    amqp_url: str, postgres_url: str, cluster_home: Path, tmp_path: Path, index_url: str
) -> None:
    check_broker(amqp_url)
    cluster = Cluster(home=cluster_home, store_url=postgres_url, broker_url=amqp_url, tmp=tmp_path)
    repo = make_repo(tmp_path / "repo")
    store = Store.open(postgres_url)
    try:
        worker = cluster.start_worker(log="amqp")
        executor = CeleryExecutor(store=store, home=cluster.home, settings=cluster.settings)
        run_id = executor.submit(docs_task(repo, tmp_path, index_url, note="rabbitmq"))
        cluster.wait_done(store, [run_id])
        state = store.state(run_id)
        assert state.status is RunStatus.MERGED, cluster.logs()
        assert merges_of(repo, run_id) == [state.delivered_commit]
        assert worker.poll() is None  # it consumed every node's message and is still serving
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("amqp-*.log"))
        assert re.search(r"Connected to amqp://guest:\*+@127\.0\.0\.1:5672/", logs), logs
        # Every node came to the worker as its own message through the broker.
        assert logs.count("Task shipyard.advance[") >= len(get_blueprint("submit").steps)
    finally:
        cluster.stop()
        store.close()
