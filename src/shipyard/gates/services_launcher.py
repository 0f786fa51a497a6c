"""Runs inside the sandbox: starts throwaway PostgreSQL and Redis servers, runs a command, stops them.

Usage: python3 services_launcher.py [--service postgresql|redis]... [--spill DIR]... [--timeout SECONDS]
       [--postgresql-root DIR] [--redis-server PATH] -- COMMAND [ARG...]

Each server is a fresh instance of the Debian binaries visible in the sandbox (``initdb``/``postgres``
under ``/usr/lib/postgresql/<major>/bin``, ``/usr/bin/redis-server``), with its data in a new directory
under the sandbox's temporary space (or the first ``--spill`` directory with room), listening on the
sandbox's own loopback at non-default ports and on unix sockets in that directory. Once every server
accepts connections, COMMAND runs as a child with these variables added:

- ``DATABASE_URL=postgresql://shipyard@127.0.0.1:55432/shipyard`` and ``PGHOST``, ``PGPORT``, ``PGUSER``,
  ``PGDATABASE`` (a trusted user ``shipyard`` owning an empty database ``shipyard``);
- ``REDIS_URL=redis://127.0.0.1:56379/0``.

Whatever happens, the servers are then stopped (their stop signal, then SIGKILL after a grace period)
and their data removed. The exit code is COMMAND's own (128+N when signal N ended it), or:

- ``EXIT_USAGE`` (2): bad arguments;
- ``EXIT_MISSING`` (121): a server's binaries are not installed (the message names the package);
- ``EXIT_FAILED`` (122): a server could not start (crashed, not ready in time, no room for its data,
  or running as root, which PostgreSQL refuses); the message includes the end of the server's log;
- 127: COMMAND could not be run.

These codes are above any pytest uses (0-5) and below those of the shell and of signals. Every line
this script prints starts with ``shipyard services:``; the line ``shipyard services: ready: ...`` marks
the moment COMMAND starts, so anything printed after it comes from COMMAND. It is stdlib-only: it runs on the sandbox's
bare interpreter, before the tree's environment is involved.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("postgresql", "redis")
PACKAGES = {"postgresql": "postgresql", "redis": "redis-server"}
"""The Debian package that provides each service's server binaries."""
POSTGRESQL_ROOT = "/usr/lib/postgresql"
REDIS_SERVER = "/usr/bin/redis-server"
HOST = "127.0.0.1"
POSTGRESQL_PORT = 55432
REDIS_PORT = 56379
DB_USER = "shipyard"
DB_NAME = "shipyard"
READY_TIMEOUT = 30.0
STOP_GRACE = 5.0
MIN_FREE_BYTES = 128 * 1024**2
"""Room a data directory needs: an initialised cluster with 1 MiB WAL segments is about 40 MiB."""
LOG_TAIL_LINES = 20
PREFIX = "shipyard services:"
READY = "ready:"
"""Printed (after PREFIX) once the servers accept connections, before COMMAND starts."""
EXIT_USAGE = 2
EXIT_MISSING = 121
EXIT_FAILED = 122
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
USAGE = (
    "usage: services_launcher.py [--service postgresql|redis]... [--spill DIR]... "
    "[--timeout SECONDS] [--postgresql-root DIR] [--redis-server PATH] -- COMMAND [ARG...]"
)


class ServiceError(Exception):
    """A server that could not be started; the message says why and what to do."""


@dataclass
class Options:
    services: list[str] = field(default_factory=list)
    spill: list[str] = field(default_factory=list)
    timeout: float = READY_TIMEOUT
    postgresql_root: str = POSTGRESQL_ROOT
    redis_server: str = REDIS_SERVER
    command: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str]) -> Options:
    """The options and command; ValueError with the usage on bad input."""
    if "--" not in argv:
        raise ValueError(USAGE)
    split = list(argv).index("--")
    options, command = list(argv[:split]), list(argv[split + 1 :])
    if len(options) % 2 or not command:
        raise ValueError(USAGE)
    parsed = Options(command=command)
    for name, value in zip(options[::2], options[1::2], strict=True):
        if name == "--service" and value in SERVICES:
            parsed.services.append(value)
        elif name == "--spill":
            parsed.spill.append(value)
        elif name == "--timeout" and value.replace(".", "", 1).isdigit():
            parsed.timeout = float(value)
        elif name == "--postgresql-root":
            parsed.postgresql_root = value
        elif name == "--redis-server":
            parsed.redis_server = value
        else:
            raise ValueError(f"unexpected {name} {value!r}; {USAGE}")
    return parsed


def postgresql_bin(root: str = POSTGRESQL_ROOT) -> Path | None:
    """The ``bin`` directory of the newest PostgreSQL under ``root`` that has initdb and postgres."""
    with contextlib.suppress(OSError):
        majors = sorted(
            (p for p in Path(root).iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        for major in majors:
            bindir = major / "bin"
            if all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "postgres")):
                return bindir
    return None


def missing(
    services: Sequence[str],
    *,
    postgresql_root: str = POSTGRESQL_ROOT,
    redis_server: str = REDIS_SERVER,
) -> list[str]:
    """One line per service whose server binaries are not installed, naming the package to install."""
    problems = []
    if "postgresql" in services and postgresql_bin(postgresql_root) is None:
        problems.append(
            f"postgresql: no initdb and postgres under {postgresql_root}/<major>/bin; "
            f"install them with `apt-get install {PACKAGES['postgresql']}`"
        )
    if "redis" in services and not os.access(redis_server, os.X_OK):
        problems.append(
            f"redis: {redis_server} is not installed; "
            f"install it with `apt-get install {PACKAGES['redis']}`"
        )
    return problems


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty log)"


def _run_step(argv: list[str], log: Path, what: str, stdin: str = "") -> None:
    """Run one setup step to completion, its output in ``log``; ServiceError with the tail if it fails."""
    with log.open("ab") as out:
        try:
            done = subprocess.run(
                argv, input=stdin.encode(), stdout=out, stderr=out, timeout=120, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ServiceError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        raise ServiceError(
            f"{what} exited with code {done.returncode}; its log ends:\n{_tail(log)}"
        )


@dataclass
class Server:
    """A started server: its process (leader of its own process group) and its log."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    stop_signal: signal.Signals
    ready: Callable[[], bool]

    def stop(self, grace: float = STOP_GRACE) -> None:
        """The stop signal, SIGKILL after ``grace`` seconds, then SIGKILL to anything left in its group."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    self.proc.kill()
                self.proc.wait()
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def start_postgresql(bindir: Path, base: Path) -> tuple[Server, dict[str, str]]:
    """initdb a cluster in ``base/pg``, create the database, start the server on loopback."""
    if os.geteuid() == 0:
        raise ServiceError(
            "PostgreSQL refuses to run as root, and the sandbox presents uid 0; run the tests in a "
            "sandbox with an unprivileged uid (shipyard's bubblewrap sandbox uses uid 1000)"
        )
    data, log = base / "pg", base / "postgresql.log"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "-A", "trust", "-E", "UTF8"]
    initdb += ["--locale=C", "--wal-segsize=1", "--no-sync", "--no-instructions"]
    _run_step(initdb, log, "initdb")
    settings = {
        "listen_addresses": HOST,
        "port": str(POSTGRESQL_PORT),
        "unix_socket_directories": str(base),
        "cluster_name": "shipyard-services",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "32MB",
        "max_connections": "50",
        "min_wal_size": "4MB",
        "max_wal_size": "32MB",
    }
    flags = [arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")]
    single = [str(bindir / "postgres"), "--single", "-D", str(data), *flags, "postgres"]
    _run_step(single, log, "creating the database", f"CREATE DATABASE {DB_NAME};\n")
    proc = _spawn([str(bindir / "postgres"), "-D", str(data), *flags], log)

    def ready() -> bool:
        try:
            status = (data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        return len(status) > 7 and status[7].strip() == "ready" and _accepts(POSTGRESQL_PORT)

    env = {
        "DATABASE_URL": f"postgresql://{DB_USER}@{HOST}:{POSTGRESQL_PORT}/{DB_NAME}",
        "PGHOST": HOST,
        "PGPORT": str(POSTGRESQL_PORT),
        "PGUSER": DB_USER,
        "PGDATABASE": DB_NAME,
    }
    return Server("postgresql", proc, log, signal.SIGINT, ready), env


def start_redis(executable: str, base: Path) -> tuple[Server, dict[str, str]]:
    """A Redis server that keeps everything in memory, on loopback and a unix socket in ``base``."""
    data, log = base / "redis", base / "redis.log"
    data.mkdir()
    argv = [executable, "--bind", HOST, "--port", str(REDIS_PORT), "--dir", str(data)]
    argv += ["--unixsocket", str(base / "redis.sock"), "--unixsocketperm", "700"]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", ""]

    def ready() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((HOST, REDIS_PORT), 1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
        return False

    proc = _spawn(argv, log)
    return Server("redis", proc, log, signal.SIGTERM, ready), {
        "REDIS_URL": f"redis://{HOST}:{REDIS_PORT}/0"
    }


def wait_ready(server: Server, timeout: float) -> None:
    """Return once ``server`` accepts connections; ServiceError with its log tail otherwise."""
    deadline = time.monotonic() + timeout
    while not server.ready():
        code = server.proc.poll()
        if code is not None:
            raise ServiceError(
                f"{server.name} exited with code {code} before accepting connections; "
                f"its log ends:\n{_tail(server.log)}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{server.name} did not accept connections within {timeout:g}s; "
                f"its log ends:\n{_tail(server.log)}"
            )
        time.sleep(0.05)


def data_root(spill: Sequence[str]) -> Path:
    """The sandbox's temporary directory, or the first spill directory, with room for the data."""
    candidates = [tempfile.gettempdir(), *spill]
    for candidate in candidates:
        with contextlib.suppress(OSError):
            st = os.statvfs(candidate)
            if st.f_bavail * st.f_frsize >= MIN_FREE_BYTES and os.access(candidate, os.W_OK):
                return Path(candidate)
    raise ServiceError(
        f"none of {', '.join(candidates)} is writable with {MIN_FREE_BYTES >> 20} MiB free for the "
        "servers' data; raise the sandbox's temporary space"
    )


def start(options: Options, base: Path, servers: list[Server]) -> dict[str, str]:
    """Start every requested server (appending each to ``servers`` as soon as it runs)."""
    env: dict[str, str] = {}
    for name in dict.fromkeys(options.services):
        if name == "postgresql":
            bindir = postgresql_bin(options.postgresql_root)
            assert bindir is not None  # checked by missing()
            server, variables = start_postgresql(bindir, base)
        else:
            server, variables = start_redis(options.redis_server, base)
        servers.append(server)
        env |= variables
    for server in servers:
        wait_ready(server, options.timeout)
    return env


def _say(message: str) -> None:
    print(f"{PREFIX} {message}".replace("\n", f"\n{PREFIX} "), file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    try:
        options = parse_args(argv)
    except ValueError as exc:
        _say(str(exc))
        return EXIT_USAGE
    problems = missing(
        options.services,
        postgresql_root=options.postgresql_root,
        redis_server=options.redis_server,
    )
    if problems:
        _say("cannot start the test services:\n" + "\n".join(problems))
        return EXIT_MISSING
    servers: list[Server] = []
    child: subprocess.Popen[bytes] | None = None
    interrupted: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        interrupted.append(signum)
        if child is not None:
            child.send_signal(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    base: Path | None = None
    try:
        base = Path(tempfile.mkdtemp(prefix="shipyard-services-", dir=data_root(options.spill)))
        env = start(options, base, servers)
        if interrupted:
            return 128 + interrupted[0]
        _say(f"{READY} " + " ".join(f"{k}={v}" for k, v in env.items() if k.endswith("_URL")))
        try:
            child = subprocess.Popen(options.command, env={**os.environ, **env})
        except OSError as exc:
            _say(f"cannot run {options.command[0]!r}: {exc}")
            return 127
        if interrupted:  # a signal that came while the child was being started
            child.send_signal(interrupted[-1])
        code = child.wait()
        return code if code >= 0 else 128 - code
    except ServiceError as exc:
        _say(f"cannot start the test services: {exc}")
        return EXIT_FAILED
    finally:
        for server in reversed(servers):
            server.stop()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
