"""``shipyard sandbox exec|shell`` and ``shipyard bench sandbox`` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.cli_sandbox import exit_status, violations
from shipyard.sandbox import BwrapSandbox, CommandResult
from tests.conftest import needs_bwrap

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))


def cli(
    *args: str, stdin: str | None = None, home: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if home is not None:
        env["SHIPYARD_HOME"] = str(home)
    return subprocess.run(
        [SHIPYARD, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path


@needs_bwrap
def test_exec_passes_output_through_and_exits_with_the_commands_status(ws: Path) -> None:
    done = cli(
        "sandbox", "exec", "--workspace", str(ws), "--",
        "/bin/sh", "-c", "id -u; pwd; echo $PYTHONHASHSEED; echo oops >&2; touch made; exit 5",
    )  # fmt: skip
    assert done.returncode == 5
    assert done.stdout.split() == ["1000", "/workspace", "0"]
    assert "oops" in done.stderr
    assert (ws / "made").exists(), "the workspace is writable, as for gates"


@needs_bwrap
def test_exec_reports_a_timeout_on_stderr_and_exits_like_a_killed_process(ws: Path) -> None:
    done = cli("sandbox", "exec", "--workspace", str(ws), "--timeout", "1", "--", "sleep", "30")
    assert done.returncode == 128 + 9
    assert "sandbox:" in done.stderr
    assert "wall" in done.stderr


@needs_bwrap
def test_exec_json_has_the_result_and_the_limits_asked_for(ws: Path) -> None:
    done = cli(
        "sandbox", "exec", "--workspace", str(ws), "--memory", "256", "--json", "--",
        "/bin/sh", "-c", "echo hi; exit 2",
    )  # fmt: skip
    assert done.returncode == 2
    data = json.loads(done.stdout)
    assert data["stdout"] == "hi\n"
    assert data["exit_status"] == 2
    assert data["violations"] == []
    assert "memory=256MiB (rlimit)" in data["limits_applied"]


def test_exec_needs_an_existing_workspace(tmp_path: Path) -> None:
    done = cli("sandbox", "exec", "--workspace", str(tmp_path / "missing"), "--", "true")
    assert done.returncode == 2
    assert "--workspace" in done.stderr


@needs_bwrap
def test_exec_allow_grants_only_the_named_host_and_shows_refusals(ws: Path) -> None:
    script = (
        "import urllib.request as u, urllib.error as e\n"
        "try:\n    u.urlopen('http://127.0.0.1:9/', timeout=10)\n"
        "except e.HTTPError as refused:\n    raise SystemExit(refused.code - 400)\n"
    )
    done = cli(
        "sandbox", "exec", "--workspace", str(ws), "--allow", "example.invalid:80", "--json", "--",
        BwrapSandbox().interpreter(), "-c", script,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # 403 from the host-side proxy
    events = json.loads(done.stdout)["egress_events"]
    assert [(e["type"], e["port"]) for e in events] == [("egress.denied", 9)]
    bad = cli("sandbox", "exec", "--workspace", str(ws), "--allow", "no-port", "--", "true")
    assert bad.returncode == 2
    assert "HOST:PORT" in bad.stderr


@needs_bwrap
def test_shell_attaches_stdin_and_stdout_to_the_sandbox(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "README").write_text("hello\n")
    done = cli(
        "sandbox", "shell", "--repo", str(repo),
        stdin="id -u; pwd; cat README; touch .git/x || echo git-read-only; exit 3\n",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout.split() == ["1000", "/workspace", "hello", "git-read-only"]
    assert not (repo / ".git" / "x").exists()


def test_violations_name_every_limit_hit() -> None:
    result = CommandResult(
        argv=("x",), exit_code=-9, stdout="", stderr="", duration_seconds=1.0,
        output_truncated=True, violations=("disk: grew too much",),
    )  # fmt: skip
    found = violations(result)
    assert found[0] == "disk: grew too much"
    assert any(line.startswith("output:") for line in found)
    assert "killed by signal SIGKILL" in found
    assert exit_status(-9) == 137
    assert exit_status(4) == 4


@needs_bwrap
@pytest.mark.slow
def test_bench_sandbox_measures_start_up_and_a_pool_hit() -> None:
    done = cli("bench", "sandbox", "--repeat", "3", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    for name in ("raw", "argv", "sandbox"):
        assert data["start_up"][name]["runs"] == 3
        assert data["start_up"][name]["p50_ms"] <= data["start_up"][name]["p95_ms"]
    ready = data["ready_workspace"]
    assert ready["all_hits"] is True
    assert ready["mechanism"] in ("overlay", "copy")
