"""The escape suite: each test is one attempt to get out of the sandbox, see the host or outlast the run.

Every attempt must fail. docs/security-model.md lists which mechanism stops each one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.config import shipyard_home
from shipyard.sandbox import BwrapSandbox, CommandResult, Limits
from shipyard.store import Store
from tests.conftest import needs_bwrap
from tests.sandbox.conftest import sh

pytestmark = needs_bwrap


def py(sandbox: BwrapSandbox, ws: Path, code: str, **kw: object) -> CommandResult:
    return sandbox.run([sandbox.interpreter(), "-c", code], workspace=ws, **kw)  # type: ignore[arg-type]


@contextlib.contextmanager
def listening(
    family: socket.AddressFamily, address: object
) -> Iterator[tuple[object, list[socket.socket]]]:
    """A host listener: its bound address and the connections it accepted."""
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener is closed when the test ends
            while True:
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname(), accepted
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()


def host_address() -> str:
    """The host's address on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        return str(probe.getsockname()[0])


# --- the filesystem ---------------------------------------------------------------------------


def test_writing_outside_the_workspace_by_absolute_path_fails(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    targets = ["/usr/x", "/etc/x", "/x", "/root/x", "/dev/x", "/proc/x", f"{tmp_path}/x"]
    result = sh(
        sandbox, ws, "".join(f"echo pwned > {t} 2>/dev/null && echo {t}; " for t in targets)
    )
    assert result.stdout == ""
    assert not any(Path(t).exists() for t in targets)


def test_dotdot_paths_resolve_inside_the_sandbox(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    escape = f"/workspace/../../..{tmp_path}/escaped"
    result = sh(
        sandbox, ws, f"mkdir -p /workspace/a && cd /workspace/a/../.. && pwd; echo x > {escape}"
    )
    assert result.stdout.strip() == "/"
    assert "Directory nonexistent" in result.stderr  # the host's path does not exist inside
    assert not (tmp_path / "escaped").exists()


def test_symlinks_in_the_workspace_do_not_reach_the_host(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_text("host data")
    (ws / "link").symlink_to(outside)
    (ws / "rootlink").symlink_to("/root")
    result = sh(
        sandbox,
        ws,
        "cat /workspace/link/data; echo x > /workspace/link/new; ls -A /workspace/rootlink/;"
        "ln -s /etc/hosts /workspace/planted && echo evil >> /workspace/planted",
    )
    assert "host data" not in result.stdout
    assert not (outside / "new").exists()
    assert ".bash_history" not in result.stdout
    assert "Read-only file system" in result.stderr  # the planted link points at the read-only /etc


def test_hard_links_to_files_outside_the_workspace_cannot_be_made(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = sh(
        sandbox,
        ws,
        "for f in /etc/hosts /etc/passwd /usr/bin/env; do ln $f /workspace/h 2>&1 || echo refused; done",
    )
    assert result.stdout.count("refused") == 3
    assert "Invalid cross-device link" in result.stdout
    assert not (ws / "h").exists()


def test_host_home_run_var_and_secrets_are_invisible(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("top secret")
    paths = (
        "/home",
        "/run",
        "/var",
        "/etc/shadow",
        "/root/.ssh",
        "/root/.bash_history",
        str(secret),
    )
    result = sh(
        sandbox, ws, f"ls -A /root | grep -v .pyenv; ls {' '.join(paths)} 2>&1; cat {secret}"
    )
    assert "top secret" not in result.stdout
    for path in paths:
        assert f"cannot access '{path}'" in result.stdout
    listing = sh(sandbox, ws, "ls -A /root/.pyenv/versions").stdout
    assert listing.split() == [Path(sandbox.interpreter()).parents[1].name]


def test_other_runs_workspaces_and_the_store_are_invisible(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "patch.diff").write_text("someone else's work")
    store = Store.open(home=tmp_path / "home")
    store.close()
    db = tmp_path / "home" / "shipyard.db"
    assert db.exists()
    result = sh(sandbox, ws, f"cat {other}/patch.diff {db} {shipyard_home()}/shipyard.db 2>&1")
    assert result.stdout.count("No such file or directory") == 3


def test_the_workspace_git_directory_is_read_only(sandbox: BwrapSandbox, ws: Path) -> None:
    (ws / ".git" / "hooks").mkdir(parents=True)
    (ws / ".git" / "config").write_text("[core]\n")
    result = sh(
        sandbox,
        ws,
        "echo '[core] fsmonitor = /workspace/evil' >> /workspace/.git/config;"
        "printf '#!/bin/sh\\ncurl evil\\n' > /workspace/.git/hooks/pre-commit;"
        "mkdir /workspace/.git/info; git config --file /workspace/.git/config core.hooksPath /tmp;"
        "mv /workspace/.git /workspace/git2",
    )
    assert result.stderr.count("Read-only file system") >= 3
    assert (ws / ".git" / "config").read_text() == "[core]\n"
    assert set((ws / ".git").rglob("*")) == {ws / ".git" / "hooks", ws / ".git" / "config"}


def test_kernel_tunables_and_sys_are_out_of_reach(sandbox: BwrapSandbox, ws: Path) -> None:
    # Each write puts back the value just read: harmless even if the protection regressed. Without the
    # read-only /proc/sys, a sandbox run by host root could set core_pattern and run code as root.
    tunables = [
        t
        for t in (
            "kernel/core_pattern",
            "kernel/modprobe",
            "vm/swappiness",
            "fs/protected_hardlinks",
        )
        if Path("/proc/sys", t).exists()
    ]
    script = "".join(
        f'v=$(cat /proc/sys/{t}) && echo "$v" > /proc/sys/{t} && echo wrote {t};' for t in tunables
    )
    result = sh(sandbox, ws, script + "ls /sys 2>&1; ls /dev; cat /proc/keys /proc/timer_list")
    assert "wrote" not in result.stdout
    assert result.stderr.count("Read-only file system") == len(tunables)
    assert "cannot access '/sys'" in result.stdout
    devices = set(result.stdout.split("\n", 1)[1].split())
    assert devices <= {"core", "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr"} | {
        "stdin", "stdout", "tty", "urandom", "zero",
    }  # fmt: skip
    assert "keyring" not in result.stdout  # the host's keyrings and timers are masked
    assert "Timer List" not in result.stdout


def test_device_nodes_cannot_be_created(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox,
        ws,
        "mknod /tmp/sda b 8 0 && echo made; mknod /workspace/mem c 1 1 && echo made; "
        "mkfifo /tmp/fifo && echo fifo-ok",
    )
    assert "made" not in result.stdout
    assert result.stdout.strip() == "fifo-ok"  # ordinary FIFOs are fine
    assert not (ws / "mem").exists()


# --- host state: environment, processes, descriptors -------------------------------------------


def test_host_environment_is_invisible_even_to_the_sandbox_init(
    sandbox: BwrapSandbox, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_SECRET", "hunter2-secret")
    script = (
        "env; for f in /proc/[0-9]*/environ; do tr '\\000' '\\n' < $f; done;"
        f"cat /proc/{os.getpid()}/environ /proc/{os.getppid()}/environ"
    )
    result = sh(sandbox, ws, script)
    assert "hunter2-secret" not in result.stdout
    assert "SHIPYARD_TEST_SECRET" not in result.stdout


def test_host_processes_cannot_be_seen_or_signalled(sandbox: BwrapSandbox, ws: Path) -> None:
    victim = subprocess.Popen(["sleep", "60"])
    try:
        result = sh(
            sandbox, ws, f"kill -9 {victim.pid}; kill -9 -1; ls -d /proc/[0-9]* | wc -l; echo alive"
        )
        assert victim.poll() is None  # still running on the host
        assert "No such process" in result.stderr
        assert int(result.stdout.split()[0]) < 10  # only the sandbox's own few processes
    finally:
        victim.kill()
        victim.wait()


def test_ptrace_of_other_processes_is_refused(sandbox: BwrapSandbox, ws: Path) -> None:
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for pid in (1, os.getppid()):\n"
        "    print(libc.ptrace(16, pid, None, None), ctypes.get_errno())\n"  # PTRACE_ATTACH
    )
    result = py(sandbox, ws, code, limits=Limits(wall_seconds=30))
    assert result.stdout.split("\n")[:2] == ["-1 1", "-1 1"]  # EPERM from the seccomp filter


def test_no_capabilities_and_no_new_privileges(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox, ws, "id -u; grep -E '^(Cap(Eff|Prm|Bnd|Amb)|NoNewPrivs):' /proc/self/status"
    )
    uid, *fields = result.stdout.split("\n")
    status = dict(line.split(":\t") for line in fields if line)
    assert uid == "1000"
    assert status == {
        "CapPrm": "0000000000000000",
        "CapEff": "0000000000000000",
        "CapBnd": "0000000000000000",
        "CapAmb": "0000000000000000",
        "NoNewPrivs": "1",
    }


def test_no_file_descriptors_leak_in(sandbox: BwrapSandbox, ws: Path, tmp_path: Path) -> None:
    leaked = (tmp_path / "open.txt").open("w")
    os.set_inheritable(leaked.fileno(), True)
    try:
        result = sh(sandbox, ws, "ls /proc/self/fd")
    finally:
        leaked.close()
    # 3 is ls's own directory handle; the seccomp filter's fd is closed by bwrap once read
    assert sorted(int(fd) for fd in result.stdout.split()) == [0, 1, 2, 3]


def test_no_new_user_namespaces_or_mounts(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox,
        ws,
        "unshare -U true && echo userns; unshare -r true && echo root; "
        "mkdir -p /tmp/m; mount -t tmpfs none /tmp/m && echo mounted; "
        "unshare -m true && echo mountns; unshare -n true && echo netns",
    )
    assert result.stdout == ""
    assert result.stderr.count("Operation not permitted") >= 4


def test_terminal_injection_is_refused(sandbox: BwrapSandbox, ws: Path) -> None:
    # The best case for an attacker: a new session whose controlling terminal is a fresh pty.
    code = (
        "import fcntl, os, sys, termios\n"
        "master, slave = os.openpty()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)\n"
        "    for request in (termios.TIOCSTI, 0x541C):\n"  # TIOCLINUX
        "        try:\n"
        "            fcntl.ioctl(slave, request, b'x')\n"
        "            print('injected')\n"
        "        except OSError as exc:\n"
        "            print(exc.errno)\n"
        "    sys.stdout.flush()\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    result = py(sandbox, ws, code)
    assert result.stdout.split() == ["1", "1"], result.stderr  # EPERM
    perl = sh(sandbox, ws, "perl -e 'my $c = \"x\"; ioctl(STDIN, 0x5412, $c) or print $!+0'")
    assert perl.stdout == "1"  # EPERM, where /dev/null alone would answer ENOTTY


# --- the network ------------------------------------------------------------------------------


def test_no_network_not_even_to_host_loopback_or_the_host_address(
    sandbox: BwrapSandbox, ws: Path
) -> None:
    with listening(socket.AF_INET, ("0.0.0.0", 0)) as (address, accepted):
        port = address[1]  # type: ignore[index]
        for target in ("127.0.0.1", host_address()):
            code = (
                "import socket\n"
                "try:\n"
                f"    socket.create_connection(({target!r}, {port}), timeout=3)\n"
                "    print('connected')\n"
                "except OSError as exc:\n"
                "    print('blocked', exc)\n"
            )
            result = py(sandbox, ws, code)
            assert result.stdout.startswith("blocked"), result.stdout + result.stderr
        time.sleep(0.2)
        assert accepted == []
    interfaces = sh(sandbox, ws, "tail -n +3 /proc/net/dev | cut -d: -f1").stdout.split()
    assert interfaces == ["lo"]  # a private, empty network namespace


def test_dns_lookups_fail(sandbox: BwrapSandbox, ws: Path) -> None:
    code = (
        "import socket\n"
        "for name in ('pypi.org', 'github.com'):\n"
        "    try:\n"
        "        print('resolved', socket.getaddrinfo(name, 443))\n"
        "    except OSError as exc:\n"
        "        print('failed', exc)\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        "    s.sendto(b'\\x00' * 12, ('1.1.1.1', 53))\n"
        "    print('sent')\n"
        "except OSError as exc:\n"
        "    print('failed', exc)\n"
    )
    result = py(sandbox, ws, code)
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["failed"] * 3
    assert "Network is unreachable" in result.stdout
    assert sh(sandbox, ws, "cat /etc/resolv.conf").exit_code != 0


def test_host_unix_sockets_are_unreachable(sandbox: BwrapSandbox, ws: Path, tmp_path: Path) -> None:
    path = tmp_path / "host.sock"
    abstract = f"\0shipyard-escape-{secrets.token_hex(4)}"
    with (
        listening(socket.AF_UNIX, str(path)) as (_, by_path),
        listening(socket.AF_UNIX, abstract) as (_, by_name),
    ):
        code = (
            "import socket\n"
            f"for address in ({str(path)!r}, {abstract!r}, '/run/docker.sock',"
            " '/var/run/docker.sock', '/run/dbus/system_bus_socket'):\n"
            "    s = socket.socket(socket.AF_UNIX)\n"
            "    try:\n"
            "        s.connect(address)\n"
            "        print('connected')\n"
            "    except OSError as exc:\n"
            "        print('blocked', exc.errno)\n"
        )
        result = py(sandbox, ws, code)
        time.sleep(0.2)
        assert by_path == []
        assert by_name == []
    # 2 = ENOENT (no such path), 111 = ECONNREFUSED (abstract names are per network namespace)
    assert result.stdout.split("\n")[:5] == ["blocked 2", "blocked 111", *["blocked 2"] * 3]


# --- resources --------------------------------------------------------------------------------


def test_a_fork_bomb_is_bounded_and_the_sandbox_returns(sandbox: BwrapSandbox, ws: Path) -> None:
    started = time.monotonic()
    result = sh(
        sandbox, ws, "f() { f | f & }; f; sleep 1", limits=Limits(max_processes=40, wall_seconds=4)
    )
    assert time.monotonic() - started < 15
    applied = [a for a in result.limits_applied if a.startswith("processes=40")]
    assert applied, result.limits_applied
    assert "fork" in result.stderr
    if "cgroup" in applied[0]:
        assert any(v.startswith("processes: the pids cgroup refused") for v in result.violations)


def test_filling_the_disk_is_stopped_by_the_disk_watchdog(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox,
        ws,
        "i=0; while :; do head -c 1048576 /dev/urandom > /workspace/f$i || exit 9; i=$((i+1)); done",
        limits=Limits(disk_bytes=16 * 1024**2, file_size_bytes=2 * 1024**2, wall_seconds=30),
    )
    assert not result.timed_out
    assert result.exit_code != 0
    assert [v.split(":")[0] for v in result.violations] == ["disk"]
    assert any(a.startswith("disk=16MiB") for a in result.limits_applied)
    written = sum(f.stat().st_size for f in ws.iterdir())
    assert written < 256 * 1024**2  # the limit plus what one poll interval let through


def test_a_single_huge_file_is_cut_at_the_file_size_limit(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox,
        ws,
        "head -c 4000000 /dev/zero > /workspace/big",
        limits=Limits(file_size_bytes=1024**2),
    )
    assert result.exit_code != 0
    assert (ws / "big").stat().st_size <= 1024**2


def test_tmp_and_shm_are_size_limited(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox,
        ws,
        "head -c 20000000 /dev/zero > /tmp/fill; head -c 20000000 /dev/zero > /dev/shm/fill",
        limits=Limits(tmp_bytes=8 * 1024**2),
    )
    assert result.stderr.count("No space left on device") == 2


def test_exhausting_memory_fails_inside(sandbox: BwrapSandbox, ws: Path) -> None:
    result = py(
        sandbox,
        ws,
        "b = bytearray(1024**3); print('allocated')",
        limits=Limits(memory_bytes=256 * 1024**2),
    )
    assert result.exit_code != 0
    assert "allocated" not in result.stdout
    assert "MemoryError" in result.stderr


@pytest.mark.slow
def test_running_past_the_time_limit_kills_the_whole_tree(sandbox: BwrapSandbox, ws: Path) -> None:
    started = time.monotonic()
    result = sh(
        sandbox,
        ws,
        "(sleep 2; touch /workspace/late) & (setsid sh -c 'sleep 2; touch /workspace/late2') & sleep 30",
        limits=Limits(wall_seconds=1),
    )
    assert result.timed_out
    assert [v.split(":")[0] for v in result.violations] == ["wall"]
    assert time.monotonic() - started < 10
    time.sleep(2.5)
    assert not (ws / "late").exists()
    assert not (ws / "late2").exists()


def test_no_process_outlives_a_run_that_ends_normally(sandbox: BwrapSandbox, ws: Path) -> None:
    marker = f"{secrets.randbelow(10**6) + 10**6}.5"
    result = sh(
        sandbox,
        ws,
        f"setsid sleep {marker} & (setsid sh -c 'sleep {marker}' &) & nohup sleep {marker} & exit 0",
    )
    assert result.exit_code == 0
    host = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=10)
    assert f"sleep {marker}" not in host.stdout
