"""The bubblewrap sandbox's ordinary behaviour: what is writable, what each limit is bound by, cleanup.

Attacks live in test_escape.py, the seccomp filter in test_seccomp.py, secrets in test_canary.py.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from shipyard.errors import ConfigError, SandboxError, SandboxUnavailable
from shipyard.sandbox import (
    BwrapSandbox,
    Limits,
    Mount,
    cgroups,
    ensure_available,
    get_sandbox,
)
from shipyard.sandbox import bwrap as bwrap_module
from tests.conftest import needs_bwrap
from tests.sandbox.conftest import sh


@needs_bwrap
def test_only_the_passed_environment_is_seen(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(sandbox, ws, "echo $GIVEN; echo ${HOME}", env={"GIVEN": "yes"})
    assert result.stdout.split() == ["yes", "/tmp"]


@needs_bwrap
def test_only_workspace_tmp_and_shm_are_writable(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(
        sandbox,
        ws,
        "for d in /usr /etc / /dev /root; do touch $d/x 2>/dev/null && echo $d; done;"
        "echo a > /workspace/a && echo b > /tmp/b && echo c > /dev/shm/c && echo wrote",
    )
    assert result.stdout.split() == ["wrote"]
    assert (ws / "a").read_text() == "a\n"
    assert not Path("/usr/x").exists()


@needs_bwrap
def test_a_normal_run_reports_every_limit_and_its_mechanism(
    sandbox: BwrapSandbox, ws: Path
) -> None:
    result = sh(sandbox, ws, "true")
    assert result.ok
    assert result.violations == ()
    applied = {a.split("=")[0].split(" ")[0]: a for a in result.limits_applied}
    assert {
        "wall",
        "cpu",
        "memory",
        "file_size",
        "core",
        "processes",
        "disk",
        "tmp",
        "output",
    } <= set(applied), result.limits_applied
    assert applied["cpu"].endswith("(rlimit)")
    assert "watchdog" in applied["disk"]
    mechanisms = ("(rlimit)", "(cgroup v1)", "(cgroup v2)", "NOT limited")
    assert any(m in applied["processes"] for m in mechanisms)


@needs_bwrap
def test_cpu_time_limit_stops_a_busy_loop(sandbox: BwrapSandbox, ws: Path) -> None:
    started = time.monotonic()
    result = sh(sandbox, ws, "while :; do :; done", limits=Limits(cpu_seconds=1, wall_seconds=20))
    assert result.exit_code != 0
    assert not result.timed_out
    assert time.monotonic() - started < 10


@needs_bwrap
def test_output_is_truncated_at_the_limit(sandbox: BwrapSandbox, ws: Path) -> None:
    result = sh(sandbox, ws, "yes | head -c 3000000", limits=Limits(output_bytes=1000))
    assert result.output_truncated
    assert len(result.stdout) == 1000


@needs_bwrap
def test_no_cgroup_is_left_behind(sandbox: BwrapSandbox, ws: Path) -> None:
    before = set(_shipyard_cgroups())
    sh(sandbox, ws, "sleep 30 & sleep 30 & exit 0")
    assert set(_shipyard_cgroups()) - before == set()


def _shipyard_cgroups() -> list[Path]:
    """This process's sandbox cgroups only: other test workers start sandboxes at the same time."""
    return [p for p in cgroups.ROOT.rglob(f"shipyard-{os.getpid()}-*") if p.is_dir()]


@needs_bwrap
def test_mounts_read_only_by_default_and_reserved_targets_refused(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    result = sh(sandbox, ws, "ls /data; touch /data/x", mounts=[Mount(source=data, target="/data")])
    assert "Read-only file system" in result.stderr
    for target in ("/workspace", "/usr/lib", "/", "/proc", "/proc/sys", "/dev/shm", "relative"):
        with pytest.raises(SandboxError):
            sandbox.run(["true"], workspace=ws, mounts=[Mount(source=data, target=target)])
    with pytest.raises(SandboxError):
        sandbox.run(
            ["true"],
            workspace=ws,
            mounts=[Mount(source=data, target="/workspace/.git", writable=True)],
        )
    assert sh(sandbox, ws, "ls /usrdata", mounts=[Mount(source=data, target="/usrdata")]).ok


@needs_bwrap
def test_registry_and_availability() -> None:
    assert isinstance(get_sandbox("bwrap"), BwrapSandbox)
    with pytest.raises(ConfigError, match="Valid sandboxes: bwrap"):
        get_sandbox("none")
    assert ensure_available().startswith("bubblewrap")


def test_disk_watch_counts_growth_once_per_inode_and_skips_git(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    watch = bwrap_module._DiskWatch([tmp_path], skip=tmp_path / ".git", limit=3 * 1024**2)
    (tmp_path / ".git" / "pack").write_bytes(os.urandom(8 * 1024**2))  # read-only in the sandbox
    (tmp_path / "a").write_bytes(os.urandom(2 * 1024**2))
    os.link(tmp_path / "a", tmp_path / "b")
    assert watch.check(force=True) is None
    (tmp_path / "c").write_bytes(os.urandom(2 * 1024**2))
    violation = watch.check(force=True)
    assert violation is not None
    assert violation.startswith("disk: the workspace and writable mounts grew by 4MiB")


def test_disk_watch_without_a_limit_never_scans(tmp_path: Path) -> None:
    watch = bwrap_module._DiskWatch([tmp_path], skip=tmp_path / ".git", limit=None)
    assert watch.next_in() == float("inf")
    assert watch.check(force=True) is None
    assert watch.applied() == ()


def test_an_etc_directory_someone_else_planted_in_tmp_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"shipyard-sandbox-etc-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(SandboxUnavailable, match="someone else may have created it"):
        BwrapSandbox()
