"""Load test of the Celery executor, bounded and on loopback only.

For each worker count it starts its own redis-server on a free port, a fresh PostgreSQL database
(127.0.0.1:5432, trust auth), one example repository and that many ``shipyard worker`` processes
(one slot each), submits ``--runs`` deterministic runs at once and waits until workers are done
with every one. Each run verifies a distinct patch (a new module) against the example with the
real gates in bubblewrap and ends waiting for review, so the target branch stays put and the
baseline is measured once. Prints one JSON line per worker count.

    python benchmarks/load.py --runs 200 --workers 1,2,4
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT))

from scenario import build_index, make_repo  # noqa: E402
from shipyard.deps.localindex import serve  # noqa: E402
from shipyard.executor import ExecutorSettings  # noqa: E402
from shipyard.executor.celery import CeleryExecutor  # noqa: E402
from shipyard.model import ChangeType, RunStatus, Task  # noqa: E402
from shipyard.store import Store  # noqa: E402
from shipyard.store.leases import Leases  # noqa: E402

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@dataclass
class Result:
    workers: int
    runs: int
    completed: int
    stuck: int
    statuses: dict[str, int]
    seconds: float
    runs_per_hour: float


def patch_for(i: int, directory: Path) -> Path:
    """A patch adding its own small module: distinct, deterministic, and verified for real."""
    body = f'"""Load-test module {i}."""\n\nVALUE = {i}\n'
    lines = body.splitlines()
    text = (
        f"diff --git a/src/inventory/load_{i}.py b/src/inventory/load_{i}.py\n"
        "new file mode 100644\n"
        "--- /dev/null\n"
        f"+++ b/src/inventory/load_{i}.py\n"
        f"@@ -0,0 +1,{len(lines)} @@\n" + "".join(f"+{line}\n" for line in lines)
    )
    path = directory / f"load-{i}.patch"
    path.write_text(text)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_load(*, runs: int, workers: int, index_url: str, scratch: Path) -> Result:
    """Submit ``runs`` runs to ``workers`` worker processes and wait for all of them."""
    import psycopg

    scratch.mkdir(parents=True, exist_ok=True)
    database = f"shipyard_load_{secrets.token_hex(4)}"
    port = free_port()
    started: list[subprocess.Popen[bytes]] = []
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(scratch)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHIPYARD_", "PIP_"))}
    env.update(
        SHIPYARD_HOME=str(scratch / "home"),
        SHIPYARD_EXECUTOR="celery",
        SHIPYARD_STORE_URL=f"postgresql://postgres@127.0.0.1:5432/{database}",
        SHIPYARD_BROKER_URL=f"redis://127.0.0.1:{port}/0",
        SHIPYARD_REPO_CONCURRENCY=str(max(workers, 1)),
    )
    settings = ExecutorSettings.from_env(env)
    store = None
    try:
        time.sleep(0.5)
        store = Store.open(settings.store_url)
        repo = make_repo(scratch / "repo")
        patches = [patch_for(i, scratch) for i in range(runs)]
        for n in range(workers):
            log = open(scratch / f"worker-{n}.log", "wb")  # noqa: SIM115
            started.append(
                subprocess.Popen(
                    [SHIPYARD, "worker", "--concurrency=1"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        executor = CeleryExecutor(store=store, home=scratch / "home", settings=settings)
        begin = time.monotonic()
        run_ids = [
            executor.submit(
                Task(
                    blueprint="submit",
                    repo=str(repo),
                    title=f"load {i}",
                    params={
                        "patch": str(p),
                        "change_type": ChangeType.FEATURE.value,
                        "index_url": index_url,
                    },
                )
            )
            for i, p in enumerate(patches)
        ]
        leases = Leases(store)
        deadline = begin + max(600.0, runs * 120.0 / workers)
        while time.monotonic() < deadline and any(leases.managed(r) for r in run_ids):
            time.sleep(1)
        seconds = time.monotonic() - begin
        stuck = sum(1 for r in run_ids if leases.managed(r))
        statuses: dict[str, int] = {}
        for r in run_ids:
            status = store.state(r).status
            statuses[status.value] = statuses.get(status.value, 0) + 1
        completed = runs - stuck
        return Result(
            workers=workers, runs=runs, completed=completed, stuck=stuck, statuses=statuses,
            seconds=round(seconds, 1), runs_per_hour=round(completed * 3600 / seconds, 1),
        )  # fmt: skip
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        redis.kill()
        redis.wait()
        if store is not None:
            store.close()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    args = parser.parse_args()
    index = build_index(ROOT / "build" / "example-index")
    with serve(index) as served, tempfile.TemporaryDirectory(prefix="shipyard-load-") as tmp:
        for count in (int(w) for w in args.workers.split(",")):
            result = run_load(
                runs=args.runs, workers=count, index_url=served.url, scratch=Path(tmp) / str(count)
            )
            print(json.dumps(asdict(result)), flush=True)
            if result.stuck or result.statuses.get(RunStatus.FAILED.value):
                sys.exit(1)


if __name__ == "__main__":
    main()
