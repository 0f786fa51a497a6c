"""Throwaway PostgreSQL and Redis inside the test sandbox: real bwrap, real servers, real clients."""

from __future__ import annotations

import os
import shlex
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from shipyard.config import GatesConfig
from shipyard.deps.localindex import serve
from shipyard.deps.wheelhouse import download
from shipyard.gates.base import GateContext
from shipyard.gates.environment import gate_limits, install, python_env, sandbox_python
from shipyard.gates.services import (
    EXIT_FAILED,
    EXIT_MISSING,
    LAUNCHER_INSIDE,
    available,
    launcher_error,
    wrap,
)
from shipyard.sandbox import BwrapSandbox
from shipyard.sandbox.base import CommandResult, Limits
from tests.conftest import example_index, needs_bwrap

needs_servers = pytest.mark.skipif(
    bool(available(["postgresql", "redis"])),
    reason="the PostgreSQL and Redis server binaries are not installed (`make setup` installs them)",
)
# One module at a time: the leftover check looks at every sandboxed server on the host.
pytestmark = [needs_bwrap, needs_servers, pytest.mark.slow, pytest.mark.xdist_group("services")]

REQUIREMENTS = ["pytest==9.2.0", "psycopg[binary]==3.3.9", "redis==8.1.0"]
LIMITS = gate_limits(timeout_seconds=60, memory_mb=4096)

INTEGRATION_TESTS = """
import os
import socket

import psycopg
import pytest
import redis


def test_postgresql_starts_empty_and_works():
    url = os.environ["DATABASE_URL"]
    assert url == "postgresql://shipyard@127.0.0.1:55432/shipyard"
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('public.notes')").fetchone() == (None,)
        conn.execute("create table notes (id serial primary key, body text not null)")
        conn.execute("insert into notes (body) values (%s)", ("hello",))
        assert conn.execute("select body from notes").fetchall() == [("hello",)]
        who = conn.execute("select current_user, current_database()").fetchone()
        assert who == ("shipyard", "shipyard")
        data = conn.execute("show data_directory").fetchone()[0]
        assert data.startswith(os.environ.get("EXPECT_DATA_UNDER", "/tmp/shipyard-services-"))
    with psycopg.connect("") as conn:  # PGHOST, PGPORT, PGUSER and PGDATABASE alone
        assert conn.execute("select count(*) from notes").fetchone() == (1,)


def test_redis_starts_empty_and_works():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    assert client.dbsize() == 0
    assert client.get("greeting") is None
    client.set("greeting", "hello")
    assert client.get("greeting") == b"hello"


def test_the_hosts_postgresql_is_unreachable():
    with pytest.raises(psycopg.OperationalError, match="refused"):
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3)


@pytest.mark.parametrize("port", [5432, 6379])
def test_the_hosts_default_ports_are_closed(port):
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=3)
"""


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A scratch directory holding an installed venv with pytest, psycopg and redis, and its wheels."""
    root = tmp_path_factory.mktemp("services")
    wheelhouse, scratch = root / "wh", root / "scratch"
    scratch.mkdir()
    with serve(example_index()) as index:
        download(
            [],
            index_url=index.url,
            dest=wheelhouse,
            extra_requirements=REQUIREMENTS,
            cache_dir=root / "pipcache",
        )
    tree = root / "empty"
    tree.mkdir()
    env = python_env(scratch=scratch, wheelhouse=wheelhouse)
    result = install(
        BwrapSandbox(), tree=tree, env=env, python=sandbox_python(), files=[],
        extra=REQUIREMENTS, limits=LIMITS,
    )  # fmt: skip
    assert result.ok, result.stderr
    return scratch, wheelhouse


def context(prepared: tuple[Path, Path], tree: Path) -> GateContext:
    scratch, wheelhouse = prepared
    return GateContext(
        tree=tree,
        scratch=scratch,
        wheelhouse=wheelhouse,
        sandbox=BwrapSandbox(),
        config=GatesConfig(),
        phase="change",
        env=python_env(scratch=scratch, wheelhouse=wheelhouse),
    )


def project(root: Path, files: dict[str, str] | None = None) -> Path:
    tree = root / "tree"
    (tree / "tests").mkdir(parents=True)
    (tree / "tests" / "test_integration.py").write_text(INTEGRATION_TESTS)
    for name, text in (files or {}).items():
        (tree / name).write_text(text)
        (tree / name).chmod(0o755)
    return tree


def run_pytest(
    ctx: GateContext, limits: Limits = LIMITS, env: dict[str, str] | None = None
) -> CommandResult:
    argv = ["/env/venv/bin/python", "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
    wrapped, mounts = wrap(argv, ["postgresql", "redis"])
    return ctx.run(wrapped, mounts=mounts, limits=limits, env=env)


def test_each_run_gets_fresh_private_servers(prepared: tuple[Path, Path], tmp_path: Path) -> None:
    ctx = context(prepared, project(tmp_path))
    first = run_pytest(ctx)
    assert first.ok, first.stdout + first.stderr
    assert "5 passed" in first.stdout
    assert "shipyard services: ready: DATABASE_URL=postgresql://" in first.stderr
    assert launcher_error(first) is None
    # The tests assert the table and the key are absent before writing them: a second run passes
    # only if nothing of the first survived.
    second = run_pytest(ctx)
    assert second.ok, second.stdout + second.stderr
    assert "5 passed" in second.stdout


def test_data_moves_out_of_a_small_tmp_and_is_removed(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    ctx = context(prepared, project(tmp_path))
    small = replace(LIMITS, tmp_bytes=64 * 1024**2)
    result = run_pytest(ctx, small, env={"EXPECT_DATA_UNDER": "/env/shipyard-services-"})
    assert result.ok, result.stdout + result.stderr
    assert not list(prepared[0].glob("shipyard-services-*"))


HOST_NAMESPACE = os.readlink("/proc/self/ns/pid")


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def _descends_from_us(pid: int, parents: dict[int, int]) -> bool:
    """Whether this test process started ``pid``: other sandboxes on the host are not ours to count."""
    ours = os.getpid()
    while pid > 1:
        pid = parents.get(pid, 0)
        if pid == ours:
            return True
    return False


def _server_pids() -> dict[int, tuple[str, str]]:
    """Host pids of this test's servers: their command line (or title) and pid namespace."""
    found: dict[int, tuple[str, str]] = {}
    parents = _parents()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not _descends_from_us(int(entry.name), parents):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            namespace = os.readlink(entry / "ns" / "pid")
            if namespace == HOST_NAMESPACE:  # this test's own tools, not a sandbox's servers
                continue
            if "shipyard-services" in cmdline or "127.0.0.1:56379" in cmdline:
                found[int(entry.name)] = (cmdline, os.readlink(entry / "ns" / "pid"))
        except OSError:
            continue
    return found


def _alive_in(namespaces: set[str]) -> list[int]:
    """Live processes (zombies waiting for the host's init to reap them hold nothing) in the namespaces."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                zombie = "\nState:\tZ" in (entry / "status").read_text()
                if os.readlink(entry / "ns" / "pid") in namespaces and not zombie:
                    alive.append(int(entry.name))
            except OSError:
                continue
    return alive


SERVER_PROCESSES = (
    r"for p in /proc/[0-9]*; do tr '\0' ' ' < $p/cmdline; echo; done"
    r" | grep -E '^(/usr/lib/postgresql/|postgres:|/usr/bin/redis-server|redis-server )' || true"
)


def test_servers_are_stopped_when_the_command_ends(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    ctx = context(prepared, tree)
    wrapped, mounts = wrap(["/bin/sh", "-c", "sleep 3; exit 7"], ["postgresql", "redis"])
    # Inside the sandbox, after the launcher returns: its exit code, then what is left of the servers.
    script = (
        f"{shlex.join(wrapped)}; echo launcher exit $?; {SERVER_PROCESSES}; ls -d /tmp/shipyard-*"
    )
    results: list[CommandResult] = []
    runner = threading.Thread(
        target=lambda: results.append(
            ctx.run(["/bin/sh", "-c", script], limits=LIMITS, mounts=mounts)
        )
    )
    runner.start()
    seen: dict[int, tuple[str, str]] = {}
    deadline = time.monotonic() + 20
    while runner.is_alive() and time.monotonic() < deadline:
        seen |= _server_pids()
        time.sleep(0.2)
    runner.join(timeout=30)
    assert not runner.is_alive()
    (result,) = results
    assert result.duration_seconds < 15
    lines = result.stdout.splitlines()
    assert lines[0] == "launcher exit 7", result.stdout + result.stderr  # the command's own code
    assert lines[1:] == [], "servers or their data outlived the launcher"
    # Seen from the host while the command ran, and gone with their sandbox.
    titles = [cmdline for cmdline, _ in seen.values()]
    assert any(t.startswith("/usr/lib/postgresql/") for t in titles), titles
    assert any(t.startswith("postgres: shipyard-services: checkpointer") for t in titles), titles
    assert any(t.startswith("/usr/bin/redis-server 127.0.0.1:56379") for t in titles), titles
    namespaces = {ns for _, ns in seen.values()}
    assert len(namespaces) == 1  # one sandbox, in its own pid namespace
    assert _alive_in(namespaces) == []


def test_missing_binaries_are_named_with_their_package(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    assert available(["postgresql", "redis"]) == []
    problems = available(
        ["postgresql", "redis"], postgresql_root="/nonexistent", redis_server="/nonexistent/redis"
    )
    assert len(problems) == 2
    assert "apt-get install postgresql" in problems[0]
    assert "apt-get install redis-server" in problems[1]
    tree = tmp_path / "tree"
    tree.mkdir()
    wrapped, mounts = wrap(
        ["/bin/sh", "-c", "echo the tests ran"], ["postgresql"], postgresql_root="/nonexistent"
    )
    result = context(prepared, tree).run(wrapped, limits=LIMITS, mounts=mounts)
    assert result.exit_code == EXIT_MISSING
    assert "the tests ran" not in result.stdout
    message = launcher_error(result)
    assert message is not None
    assert "apt-get install postgresql" in message


def test_a_server_that_fails_to_start_is_reported_with_its_log(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    tree = project(
        tmp_path,
        {
            "crashing-redis": "#!/bin/sh\necho 'fatal: cannot open the listening socket'\nexit 1\n",
            "hanging-redis": "#!/bin/sh\necho 'still warming up'\nexec sleep 60\n",
        },
    )
    ctx = context(prepared, tree)
    command = ["/bin/sh", "-c", "echo the tests ran"]
    wrapped, mounts = wrap(command, ["redis"], redis_server="/workspace/crashing-redis")
    crashed = ctx.run(wrapped, limits=LIMITS, mounts=mounts)
    assert crashed.exit_code == EXIT_FAILED
    assert "the tests ran" not in crashed.stdout
    message = launcher_error(crashed) or ""
    assert "redis exited with code 1 before accepting connections" in message
    assert "cannot open the listening socket" in message

    hanging = [sandbox_python(), "-I", LAUNCHER_INSIDE, "--service", "redis"]
    hanging += ["--redis-server", "/workspace/hanging-redis", "--timeout", "1", "--", *command]
    hung = ctx.run(hanging, limits=LIMITS, mounts=mounts)
    assert hung.exit_code == EXIT_FAILED
    assert hung.duration_seconds < 10
    message = launcher_error(hung) or ""
    assert "redis did not accept connections within 1s" in message
    assert "still warming up" in message


def test_the_command_cannot_pass_its_failures_off_as_a_services_problem(
    prepared: tuple[Path, Path], tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    forged = "echo 'shipyard services: cannot start the test services' >&2; exit 121"
    wrapped, mounts = wrap(["/bin/sh", "-c", forged], ["redis"])
    result = context(prepared, tree).run(wrapped, limits=LIMITS, mounts=mounts)
    assert result.exit_code == EXIT_MISSING
    assert launcher_error(result) is None


def test_no_services_leaves_the_command_alone() -> None:
    assert wrap(["pytest", "-q"], []) == (["pytest", "-q"], ())
