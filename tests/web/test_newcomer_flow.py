"""`make dashboard` (examples/demo.py --serve) without the blocking server: the demo's agent run is
left waiting for review, the repository registered and a token made the way the demo does it; then
the server over that home shows the run with its diff, the token's identity (not the requester)
approves it through the dashboard's form, and the change is merged in the demo's repository.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard.agent.replay import ReplayServer
from shipyard.web import ServeSettings, create_app
from tests.conftest import EXAMPLES, needs_bwrap
from tests.web.dashboard.conftest import csrf_of, git, log_in

sys.path.insert(0, str(EXAMPLES))
import demo

from scenario import make_repo

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("web-newcomer")]
TITLE = "Report items that are low on stock"


def test_the_demo_home_served_shows_the_waiting_review_and_its_approval_merges(
    tmp_path: Path, index_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "WORK", tmp_path)  # the demo's commands run here, not in build/
    repo = make_repo(tmp_path / "repo")
    home = tmp_path / "home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "SHIPYARD_", "OPENAI_"))
    }
    env["SHIPYARD_HOME"] = str(home)
    with ReplayServer(demo.AGENTS / "low-stock.json") as model:
        demo.shipyard(
            "run", "task", "--repo", str(repo), *demo.LOW_STOCK_TASK, "--index-url", index_url,
            env={**env, "OPENAI_BASE_URL": model.url}, quiet=True,
        )  # fmt: skip
    token = demo.register_for_dashboard(repo, index_url, env=env)
    before = git(repo, "rev-parse", "main")

    app = create_app(ServeSettings(home=home, scheduler=False))
    with TestClient(app, follow_redirects=False) as browser:
        assert log_in(browser, token).status_code == 303
        runs = browser.get("/runs").text
        assert TITLE in runs
        assert "awaiting review" in runs.replace("_", " ")
        (waiting,) = app.state.shipyard.reviews()
        assert waiting.task["requested_by"] == "coding-agent"  # not the token's identity
        page = browser.get(f"/runs/{waiting.run_id}").text
        assert "def low_stock" in page  # the diff, read from the registered repository
        assert "Approve and merge" in page
        assert 'id="self-review"' not in page  # the reviewer did not request it: may approve
        assert "shop" in browser.get("/runs/new").text  # registered: the form can start runs on it

        done = browser.post(
            f"/runs/{waiting.run_id}/approve",
            data={"csrf_token": csrf_of(browser), "comment": "Looks right"},
        )
        assert done.status_code == 303, done.text
        app.state.approvals.wait(waiting.run_id, timeout=240)
        assert app.state.shipyard.run(waiting.run_id).status.value == "merged"
        assert "status-merged" in browser.get(done.headers["location"]).text
        insights = browser.get("/insights").text
        assert 'id="types-table"' in insights
        assert "feature" in insights
        metrics = browser.get("/metrics", headers={"Authorization": f"Bearer {token}"}).text
        merged = re.search(r'^shipyard_runs\{[^}]*status="merged"[^}]*\} (\S+)$', metrics, re.M)
        assert merged, metrics
        assert float(merged.group(1)) >= 1

    assert git(repo, "rev-parse", "main") != before
    assert "def low_stock" in git(repo, "show", "main:src/inventory/stock.py")
    assert "approved by reviewer" in git(repo, "log", "-1", "--format=%B", "main")
