"""A small cluster for executor tests: one redis-server on a free port and one shipyard home (its
caches warm) per test session, a fresh PostgreSQL database and queue names per test, and
``shipyard worker`` processes that are killed (whole process group) afterwards."""

from __future__ import annotations

import contextlib
import os
import secrets
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
from shipyard.model import ChangeType, Task
from shipyard.sandbox.mountns import mounts_under
from shipyard.store import Store
from shipyard.store.leases import Leases
from tests.conftest import EXAMPLES, SHIPYARD
from tests.store.conftest import postgres_url  # noqa: F401 - a fixture used by `cluster`

sys.path.insert(0, str(EXAMPLES))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unmount_under(directory: Path) -> None:
    """Unmount whatever is mounted below ``directory``, deepest first."""
    points = mounts_under(directory, Path("/proc/self/mountinfo").read_text(encoding="utf-8"))
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", point], capture_output=True, timeout=30, check=False)


@dataclass
class RedisServer:
    """Our own redis-server without persistence: a restart loses every message, as a crash would."""

    port: int
    directory: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Cluster:
    """One broker, one database, one home, and the workers started on them."""

    home: Path
    store_url: str
    broker_url: str
    tmp: Path
    queue_prefix: str = field(default_factory=lambda: f"shipyard-{secrets.token_hex(4)}")
    redis: RedisServer | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

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
            SHIPYARD_BROKER_URL=self.broker_url,
            SHIPYARD_QUEUE_PREFIX=self.queue_prefix,
            SHIPYARD_LEASE_SECONDS="4",
            SHIPYARD_SWEEP_SECONDS="1",
            SHIPYARD_REQUEUE_SECONDS="8",
        )
        return clean

    @property
    def settings(self) -> ExecutorSettings:
        return ExecutorSettings.from_env(self.env)

    def restart_broker(self) -> None:
        """Restart the redis-server empty: every queued message is gone."""
        assert self.redis is not None, "only our own redis-server can be restarted"
        self.redis.stop()
        time.sleep(1)
        self.redis.start()

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

    def stop(self) -> None:
        """Kill every worker, then unmount the overlays that killed ones left (as root the
        sandbox pool mounts them on the host; a process killed with SIGKILL cannot unmount)."""
        for proc in self.workers:
            self.kill(proc)
        unmount_under(self.home)

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


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for every executor test; each test has its own queues on it."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed; the Celery executor tests start their own")
    server = RedisServer(port=free_port(), directory=tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workers' home, shared by the tests of a session: sandbox environments, wheels and
    measurements of trees measured before stay warm. Runs never collide in it (ids are unique)."""
    return tmp_path_factory.mktemp("cluster-home")


@pytest.fixture
def cluster(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
    redis_server: RedisServer,
    cluster_home: Path,
) -> Iterator[Cluster]:
    made = Cluster(
        home=cluster_home,
        store_url=postgres_url,
        broker_url=redis_server.url,
        tmp=tmp_path,
        redis=redis_server,
    )
    try:
        yield made
    finally:
        made.stop()
        if not redis_server.running:  # a test that stopped it failed half-way
            redis_server.start()


def docs_task(repo: Path, directory: Path, index_url: str, *, note: str) -> Task:
    """A submitted patch adding a page under docs/: verified for real, and merged by the seed
    policy (documentation, on the auto-merge allowlist)."""
    lines = [f"# {note}", "", "Written by a test of the Celery executor."]
    patch = directory / f"{note}.patch"
    patch.write_text(
        f"diff --git a/docs/{note}.md b/docs/{note}.md\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        f"+++ b/docs/{note}.md\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )
    return Task(
        blueprint="submit",
        repo=str(repo),
        title=f"docs: {note}",
        params={
            "patch": str(patch),
            "change_type": ChangeType.DOCUMENTATION.value,
            "index_url": index_url,
        },
    )


def merges_of(repo: Path, run_id: str) -> list[str]:
    """Commits on main carrying the run's ``Shipyard-Run`` trailer."""
    from scenario import GIT_ENV  # type: ignore[import-not-found]

    done = subprocess.run(
        ["git", "log", "--format=%H", f"--grep=^Shipyard-Run: {run_id}$", "main"],
        cwd=repo, env=GIT_ENV, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.split()
