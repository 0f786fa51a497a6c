"""mini-swe-agent end to end: the real CLI runs the real tool in bubblewrap over the example repo,
its model played by the replay server reached only through the egress proxy, and the change it
leaves goes through commit, gates, policy and delivery."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.agent.replay import ReplayServer
from tests.conftest import EXAMPLES, needs_bwrap, shipyard_cli

sys.path.insert(0, str(EXAMPLES))
from scenario import branches, head, make_repo, show

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_e2e_mini_swe_agent")]

README_FIXTURE = EXAMPLES / "agents" / "mini-swe-agent-readme.json"
TASK = "Add a short usage example to the README, before the section on running the tests."
KEY = "e2e-model-key-4f1c9a7d2b"  # matches no generic credential pattern: only shipyard's masking hides it


def agent_cli(home: Path, tools: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return shipyard_cli(home, "run", "agent", *args,
                        env={"SHIPYARD_TOOLS_DIR": str(tools), "OPENAI_API_KEY": KEY}, ok=False)  # fmt: skip


def all_text(home: Path) -> str:
    """Every file shipyard keeps under its home (store, run directories, reports), as text."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*")
        if p.is_file() and "workspaces" not in p.parts
    )  # fmt: skip


def test_mini_swe_agent_documents_the_readme_and_the_change_merges(
    tmp_path: Path, index_url: str, mini_swe_agent_tools: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    with ReplayServer(README_FIXTURE) as model:
        allow = model.base.removeprefix("http://")
        done = agent_cli(
            home, mini_swe_agent_tools, "--adapter", "mini-swe-agent", "--repo", str(repo),
            "--task", TASK, "--model", "replay-model", "--endpoint", model.url,
            "--allow-local", allow, "--type", "documentation", "--index-url", index_url, "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert model.remaining == 0
        # The tool sent the key it was given, and its bash tool was what the model was offered.
        assert model.requests[0].headers["authorization"] == f"Bearer {KEY}"
        assert [t["function"]["name"] for t in model.requests[0].body["tools"]] == ["bash"]
    out = json.loads(done.stdout)
    run = out["run"]
    assert run["status"] == "merged", run
    assert run["decision"]["action"] == "MERGE"
    assert run["gates"]["verdict"]["tests"]["status"] == "passed"
    assert "Use it from Python:" in show(repo, "main", "README.md")
    assert head(repo) == branches(repo)["main"]
    assert out["agent"]["finished"] is True
    assert out["agent"]["summary"] == "Added a short usage example to the README."
    assert out["spend"]["steps"] == 4

    events = json.loads(shipyard_cli(home, "runs", "show", run["run_id"], "--json").stdout)[
        "events"
    ]
    egress = [e["data"] for e in events if e["type"] == "agent.egress"]
    assert len(egress) == 4
    assert all(e["type"] == "egress.allowed" and e["local"] and f"{e['host']}:{e['port']}" == allow
               for e in egress)  # fmt: skip
    [record] = [e["data"]["reproducibility"]["agent_adapter"] for e in events
                if "agent_adapter" in e["data"].get("reproducibility", {})]  # fmt: skip
    assert record["adapter"] == "mini-swe-agent"
    assert record["version"] == "2.4.6"
    assert record["endpoint"]["grant"] == allow
    assert record["endpoint"]["local"] is True
    assert "minisweagent.run.mini" in record["command"]
    assert f"--task={TASK}" in record["command"]
    [started] = [e["data"] for e in events if e["type"] == "agent.started"]
    trajectory = Path(started["transcript"]) / "pass-1" / "trajectory.json"
    assert json.loads(trajectory.read_text())["info"]["exit_status"] == "Submitted"
    # DESIGN invariant 3: the key reached the tool, and nothing shipyard keeps.
    assert KEY not in all_text(home)
    assert KEY not in done.stdout + done.stderr
