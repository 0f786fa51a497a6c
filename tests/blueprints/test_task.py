"""The agent blueprints end to end: the real CLI, git, bubblewrap, gates, and the real openai client
against the replay server playing a scripted model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.agent.replay import ReplayServer
from tests.conftest import EXAMPLES, example_index, needs_bwrap

sys.path.insert(0, str(EXAMPLES))
from scenario import branches, head, make_repo, show
from shipyard.deps.localindex import serve

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("e2e")]

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
LOW_STOCK = EXAMPLES / "agents" / "low-stock.json"


@pytest.fixture(scope="module")
def index_url() -> Iterator[str]:
    with serve(example_index()) as index:
        yield index.url


def cli(home: Path, model_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "OPENAI_"))}
    env.update(SHIPYARD_HOME=str(home), COLUMNS="200", OPENAI_BASE_URL=model_url)
    return subprocess.run(
        [SHIPYARD, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


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
