"""A small cluster for executor tests: our own redis-server on a free port, a fresh PostgreSQL
database, and ``shipyard worker`` processes that are killed (whole process group) afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shipyard.executor import ExecutorSettings
from shipyard.store import Store
from shipyard.store.leases import Leases
from tests.conftest import EXAMPLES, SHIPYARD
from tests.store.conftest import postgres_url  # noqa: F401 - a fixture used by `cluster`

sys.path.insert(0, str(EXAMPLES))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """One broker, one database, one home, and the workers started on them."""

    home: Path
    store_url: str
    redis_port: int
    tmp: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    redis: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        clean = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PIP_", "OPENAI_", "SHIPYARD_"))
        }
        clean.update(
            SHIPYARD_HOME=str(self.home),
            SHIPYARD_EXECUTOR="celery",
            SHIPYARD_STORE_URL=self.store_url,
            SHIPYARD_BROKER_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            SHIPYARD_LEASE_SECONDS="4",
            SHIPYARD_SWEEP_SECONDS="1",
            SHIPYARD_REQUEUE_SECONDS="8",
        )
        return clean

    @property
    def settings(self) -> ExecutorSettings:
        return ExecutorSettings.from_env(self.env)

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.redis_port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(timeout=10)

    def start_worker(
        self, *, failpoints: str = "", concurrency: int = 1, log: str = "worker"
    ) -> subprocess.Popen[bytes]:
        env = self.env
        if failpoints:
            env["SHIPYARD_FAILPOINTS"] = failpoints
        out = open(self.tmp / f"{log}-{len(self.workers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [SHIPYARD, "worker", f"--concurrency={concurrency}", "--loglevel=info"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        out.close()
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and every process it started, like a host that lost power."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.tmp.glob("*.log"))

    def wait_done(self, store: Store, run_ids: list[str], *, timeout: float = 240) -> None:
        """Until workers are done with every run (all finished and reported)."""
        leases = Leases(store)
        deadline = time.monotonic() + timeout
        while any(leases.managed(r) for r in run_ids):
            if time.monotonic() > deadline:
                raise AssertionError(f"runs still managed after {timeout} s:\n{self.logs()}")
            time.sleep(0.5)


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:  # noqa: F811
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; the Celery executor tests start their own")
    made = Cluster(
        home=tmp_path / "home", store_url=postgres_url, redis_port=free_port(), tmp=tmp_path
    )
    made.start_redis()
    try:
        yield made
    finally:
        for proc in made.workers:
            made.kill(proc)
        made.stop_redis()
