"""The agent blueprints end to end: the real CLI, git, bubblewrap, gates, and the real openai client
against the replay server playing a scripted model."""

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

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_task")]

LOW_STOCK = EXAMPLES / "agents" / "low-stock.json"


def cli(home: Path, model_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return shipyard_cli(home, *args, env={"OPENAI_BASE_URL": model_url}, ok=False)


def test_the_task_blueprint_implements_a_feature_that_waits_for_review(
    tmp_path: Path, index_url: str
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    with ReplayServer(LOW_STOCK) as model:
        done = cli(
            home, model.url, "run", "task", "--repo", str(repo), "--model", "replay-model",
            "--task", "Add Stock.low_stock(threshold=5): items with fewer units, fewest first.",
            "--index-url", index_url, "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert model.remaining == 0
    out = json.loads(done.stdout)
    run = out["run"]
    # A feature touching src/ waits for a person under the seed policy, fully verified.
    assert run["status"] == "awaiting_review", run
    assert run["decision"]["action"] == "REVIEW"
    assert run["gates"]["verdict"]["tests"]["status"] == "passed"
    assert out["spend"]["steps"] == 5
    assert out["spend"]["tokens"] == 1840 + 2780 + 3020 + 3120 + 3340
    transcript = Path(out["transcript"])
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert any("25 passed" in json.dumps(r) for r in records)  # run_tests went through the harness
    branch = f"shipyard/{run['run_id']}"
    assert branch in branches(repo)
    assert "def low_stock" in show(repo, branch, "src/inventory/stock.py")
    assert "def low_stock" not in show(repo, "main", "src/inventory/stock.py")
    assert head(repo) == branches(repo)["main"]
