"""``shipyard run agent`` as a user meets it: setup mistakes are one clear line before any run is
recorded, and a tool that writes the API key into the repository gets nothing committed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.agent.replay import ReplayServer
from tests.conftest import EXAMPLES, needs_bwrap, shipyard_cli

sys.path.insert(0, str(EXAMPLES))
from scenario import branches, make_repo

KEY = "cli-model-key-8d2e6b41c7"


def run(home: Path, tools: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return shipyard_cli(home, "run", "agent", "--task", "Document the module.", *args,
                        env={"SHIPYARD_TOOLS_DIR": str(tools), "OPENAI_API_KEY": KEY}, ok=False)  # fmt: skip


def assert_refused(done: subprocess.CompletedProcess[str], home: Path, repo: Path, message: str,
                   before: dict[str, str]) -> None:  # fmt: skip
    assert done.returncode != 0
    assert message in " ".join(done.stderr.split()), done.stderr  # rich wraps long lines
    assert "Traceback" not in done.stdout + done.stderr
    assert branches(repo) == before
    listed = shipyard_cli(home, "runs", "list", "--json")
    assert json.loads(listed.stdout) == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unknown_adapter_or_none_at_all_is_refused_before_a_run(tmp_path: Path) -> None:
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    before = branches(repo)
    done = run(home, tmp_path / "tools", "--adapter", "sweep", "--repo", str(repo))
    assert_refused(done, home, repo, "Unknown agent adapter 'sweep'", before)
    assert done.returncode == 12
    done = run(home, tmp_path / "tools", "--repo", str(repo))
    assert_refused(done, home, repo, "pass --adapter NAME or set [agent.external] adapter", before)


def test_a_missing_tool_environment_says_how_to_install_it(tmp_path: Path) -> None:
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    done = run(home, tmp_path / "empty", "--adapter", "codex", "--repo", str(repo))
    assert_refused(done, home, repo, "shipyard adapter install codex", branches(repo))


def test_a_local_endpoint_without_its_allowance_or_one_that_is_down_is_refused(
    tmp_path: Path, mini_swe_agent_tools: Path
) -> None:
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    before = branches(repo)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    base = ("--adapter", "mini-swe-agent", "--repo", str(repo), "--endpoint", url)
    done = run(home, mini_swe_agent_tools, *base)
    assert_refused(done, home, repo, f"--allow-local 127.0.0.1:{port}", before)
    done = run(home, mini_swe_agent_tools, *base, "--allow-local", f"127.0.0.1:{port + 1}")
    assert_refused(done, home, repo, "may name only the endpoint's own host:port", before)
    done = run(home, mini_swe_agent_tools, *base, "--allow-local", f"127.0.0.1:{port}")
    assert_refused(done, home, repo, "is unreachable from this host", before)


LEAK = {
    "model": "replay-model",
    "responses": [
        {"content": "Saving my notes.",
         "tool_calls": [{"name": "bash", "arguments": {"command": "env | sort > notes.txt"}}]},
        {"content": "Done.",
         "tool_calls": [{"name": "bash", "arguments": {
             "command": "printf 'COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\\nWrote notes.\\n'"}}]},
    ],
}  # fmt: skip


@pytest.mark.slow
@needs_bwrap
@pytest.mark.xdist_group("test_cli_agent")
def test_a_tool_that_writes_the_key_into_the_repository_gets_nothing_committed(
    tmp_path: Path, mini_swe_agent_tools: Path
) -> None:
    """Configured from shipyard.toml this time: [agent.external] names adapter, endpoint, allowance."""
    repo, home = make_repo(tmp_path / "repo"), tmp_path / "home"
    with ReplayServer(LEAK) as model:
        allow = model.base.removeprefix("http://")
        config = repo / "shipyard.toml"
        config.write_text(config.read_text() + (
            f'\n[agent.external]\nadapter = "mini-swe-agent"\nendpoint = "{model.url}"\n'
            f'allow_local = "{allow}"\n'
        ))  # fmt: skip
        subprocess.run(["git", "commit", "-qam", "Use mini-swe-agent"], cwd=repo, check=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})  # fmt: skip
        before = branches(repo)
        done = run(home, mini_swe_agent_tools, "--repo", str(repo), "--json")
        assert model.remaining == 0
    state = json.loads(done.stdout)["run"]
    assert state["status"] == "halted", state
    assert "wrote the model API key into notes.txt" in json.dumps(state)
    assert branches(repo) == before
    kept = "\n".join(p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*")
                     if p.is_file() and "workspaces" not in p.parts)  # fmt: skip
    assert KEY not in kept
    assert KEY not in done.stdout + done.stderr
