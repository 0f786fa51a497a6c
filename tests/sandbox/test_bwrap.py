"""Attacks on the bubblewrap sandbox: each test tries to get out, or to see or keep something, and fails."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from shipyard.errors import ConfigError, SandboxError
from shipyard.sandbox import BwrapSandbox, Limits, Mount, ensure_available, get_sandbox
from tests.conftest import needs_bwrap

pytestmark = needs_bwrap


@pytest.fixture(scope="module")
def sandbox() -> BwrapSandbox:
    return BwrapSandbox()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


def sh(sandbox: BwrapSandbox, ws: Path, script: str, **kw: object) -> tuple[int, str, str]:
    result = sandbox.run(["/bin/sh", "-c", script], workspace=ws, **kw)  # type: ignore[arg-type]
    return result.exit_code, result.stdout, result.stderr


def test_runs_as_an_unprivileged_user_with_no_capabilities(sandbox: BwrapSandbox, ws: Path) -> None:
    code, out, _ = sh(sandbox, ws, "id -u; grep CapEff /proc/self/status")
    assert code == 0
    uid, caps = out.split("\n", 1)
    assert uid == "1000"
    assert caps.split()[1] == "0000000000000000"


def test_host_environment_is_invisible_even_to_the_sandbox_init(
    sandbox: BwrapSandbox, ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_SECRET", "hunter2-secret")
    code, out, _ = sh(
        sandbox, ws, "env; for f in /proc/[0-9]*/environ; do tr '\\000' '\\n' < $f; done"
    )
    assert code == 0
    assert "hunter2-secret" not in out
    assert "SHIPYARD_TEST_SECRET" not in out


def test_only_the_passed_environment_is_seen(sandbox: BwrapSandbox, ws: Path) -> None:
    _code, out, _ = sh(sandbox, ws, "echo $GIVEN; echo ${HOME}", env={"GIVEN": "yes"})
    assert out.split() == ["yes", "/tmp"]


def test_no_network_not_even_to_host_loopback(sandbox: BwrapSandbox, ws: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener is closed when the test ends
            accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        script = (
            "import socket,sys\n"
            f"try:\n socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
            "except OSError as e:\n print('blocked', e); sys.exit(0)\n"
            "print('connected'); sys.exit(1)\n"
        )
        result = sandbox.run([sandbox.interpreter(), "-c", script], workspace=ws)
        assert result.exit_code == 0, result.stdout + result.stderr
        assert "blocked" in result.stdout
        time.sleep(0.2)
        assert accepted == []
        _code, out, _ = sh(sandbox, ws, "cat /proc/net/dev | tail -n +3 | cut -d: -f1")
        assert out.split() == ["lo"]  # a private, empty network namespace
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        listener.close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_host_home_run_and_other_paths_are_invisible(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("top secret")
    script = f"ls -A /root | grep -v .pyenv; ls /home /run /var /etc/shadow {secret} 2>&1; cat {secret} 2>&1"
    _, out, _ = sh(sandbox, ws, script)
    assert "top secret" not in out
    for path in ("/home", "/run", "/var", "/etc/shadow", str(secret)):
        assert f"cannot access '{path}'" in out
    _, listing, _ = sh(sandbox, ws, "ls -A /root/.pyenv/versions")
    assert listing.split() == [Path(sandbox.interpreter()).parents[1].name]


def test_system_is_read_only_and_workspace_and_tmp_are_writable(
    sandbox: BwrapSandbox, ws: Path
) -> None:
    _code, out, _ = sh(
        sandbox,
        ws,
        "touch /usr/x 2>&1; touch /etc/x 2>&1; echo a > /workspace/a && echo b > /tmp/b && echo wrote",
    )
    assert "Read-only file system" in out or "Permission denied" in out
    assert out.strip().endswith("wrote")
    assert (ws / "a").read_text() == "a\n"
    assert not Path("/usr/x").exists()


def test_workspace_git_directory_is_read_only(sandbox: BwrapSandbox, ws: Path) -> None:
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("[core]\n")
    _code, out, _ = sh(
        sandbox,
        ws,
        "echo '[core] fsmonitor = evil' >> /workspace/.git/config 2>&1; mkdir /workspace/.git/hooks 2>&1; echo done",
    )
    assert "Read-only file system" in out
    assert (ws / ".git" / "config").read_text() == "[core]\n"
    assert not (ws / ".git" / "hooks").exists()


def test_symlinks_in_the_workspace_do_not_reach_the_host(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data").write_text("host data")
    (ws / "link").symlink_to(outside)
    (ws / "rootlink").symlink_to("/root")
    _, out, _ = sh(
        sandbox,
        ws,
        "cat /workspace/link/data 2>&1; echo x > /workspace/link/new 2>&1; ls -A /workspace/rootlink/",
    )
    assert "host data" not in out
    assert not (outside / "new").exists()
    assert ".bash_history" not in out


def test_wall_time_kills_the_whole_process_tree(sandbox: BwrapSandbox, ws: Path) -> None:
    started = time.monotonic()
    result = sandbox.run(
        [
            "/bin/sh",
            "-c",
            "(sleep 2; touch /workspace/late) & (setsid sh -c 'sleep 2; touch /workspace/late2') & sleep 30",
        ],
        workspace=ws,
        limits=Limits(wall_seconds=1),
    )
    assert result.timed_out
    assert time.monotonic() - started < 10
    time.sleep(3)
    assert not (ws / "late").exists()
    assert not (ws / "late2").exists()


def test_memory_limit(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sandbox.run(
        [sandbox.interpreter(), "-c", "b = bytearray(1024**3); print('allocated')"],
        workspace=ws,
        limits=Limits(memory_bytes=256 * 1024**2),
    )
    assert result.exit_code != 0
    assert "allocated" not in result.stdout


def test_file_size_limit(sandbox: BwrapSandbox, ws: Path) -> None:
    code, _, _ = sh(
        sandbox,
        ws,
        "head -c 4000000 /dev/zero > /workspace/big",
        limits=Limits(file_size_bytes=1024**2),
    )
    assert code != 0
    assert (ws / "big").stat().st_size <= 1024**2


def test_process_limit_stops_a_fork_bomb(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sandbox.run(
        ["/bin/sh", "-c", "for i in $(seq 1 60); do sleep 3 & done; wait; echo finished"],
        workspace=ws,
        limits=Limits(max_processes=20, wall_seconds=20),
    )
    assert any("processes=20" in applied for applied in result.limits_applied), (
        result.limits_applied
    )
    assert "fork" in result.stderr.lower() or result.exit_code != 0


def test_output_is_truncated_at_the_limit(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sandbox.run(
        ["/bin/sh", "-c", "yes | head -c 3000000"], workspace=ws, limits=Limits(output_bytes=1000)
    )
    assert result.output_truncated
    assert len(result.stdout) == 1000


def test_no_file_descriptors_leak_in(sandbox: BwrapSandbox, ws: Path, tmp_path: Path) -> None:
    leaked = (tmp_path / "open.txt").open("w")
    os.set_inheritable(leaked.fileno(), True)
    try:
        _, out, _ = sh(sandbox, ws, "ls /proc/self/fd")
    finally:
        leaked.close()
    assert sorted(int(fd) for fd in out.split()) == [0, 1, 2, 3]  # 3 is ls's own directory handle


def test_mounts_read_only_by_default_and_reserved_targets_refused(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _, out, _ = sh(
        sandbox, ws, "ls /data; touch /data/x 2>&1", mounts=[Mount(source=data, target="/data")]
    )
    assert "Read-only file system" in out
    for target in ("/workspace", "/usr/lib", "/", "/proc", "relative"):
        with pytest.raises(SandboxError):
            sandbox.run(["true"], workspace=ws, mounts=[Mount(source=data, target=target)])
    with pytest.raises(SandboxError):
        sandbox.run(
            ["true"],
            workspace=ws,
            mounts=[Mount(source=data, target="/workspace/.git", writable=True)],
        )


def test_registry_and_availability() -> None:
    assert isinstance(get_sandbox("bwrap"), BwrapSandbox)
    with pytest.raises(ConfigError, match="Valid sandboxes: bwrap"):
        get_sandbox("none")
    assert ensure_available().startswith("bubblewrap")
