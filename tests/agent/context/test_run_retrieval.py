"""A real run of the task blueprint with retrieval on: the chunks go into the agent's system prompt
and the run's events record which chunks were used and their scores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shipyard.agent.replay import ReplayServer
from shipyard.events import EventType
from shipyard.store import Store
from tests.conftest import EXAMPLES, needs_bwrap, shipyard_cli

sys.path.insert(0, str(EXAMPLES))
from scenario import make_repo

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("test_run_retrieval")]

TASK = "Add Stock.low_stock(threshold=5): items with fewer units, fewest first."


def test_a_run_shows_the_agent_retrieved_chunks_and_records_them(
    tmp_path: Path, index_url: str, embedder: object
) -> None:
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    with ReplayServer(EXAMPLES / "agents" / "low-stock.json") as model:
        done = shipyard_cli(
            home, "run", "task", "--repo", str(repo), "--model", "replay-model", "--task", TASK,
            "--index-url", index_url, "--json",
            env={"OPENAI_BASE_URL": model.url, "SHIPYARD_RETRIEVAL": ""}, ok=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        system = model.requests[0].body["messages"][0]["content"]
    run_id = json.loads(done.stdout)["run"]["run_id"]
    with Store.open(home=home) as store:
        [started] = [e for e in store.events(run_id) if e.type == EventType.AGENT_STARTED]
    [record] = [s for s in started.data["context"] if s["name"] == "retrieval"]
    assert record["backend"] == "sqlite-vec"
    assert record["index"]["embedded"] > 0
    best = record["chunks"][0]
    assert best["path"] == "src/inventory/stock.py"
    assert 0 < best["score"] <= 1
    assert "## Code like the task (retrieved by embeddings)" in system
    assert f"### src/inventory/stock.py:{best['lines'][0]}-{best['lines'][1]}" in system
    assert (home / "retrieval.db").is_file()
