"""A real server (the FastAPI app over a real store) and real git repositories for the dashboard's tests.

Runs are recorded through the store exactly as blueprints record them; their branches are real
commits in a real repository, so approving one really merges it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.agent.messages import Message
from shipyard.agent.transcript import CompactionMarker, Transcript
from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store
from shipyard.web import ServeSettings, create_app
from shipyard.web.auth import CSRF_FIELD, Role
from tests.conftest import EXAMPLES

sys.path.insert(0, str(EXAMPLES))
from scenario import GIT_ENV, head, make_repo

XSS_TITLE = "<script>alert('title')</script> low stock"
XSS_LINE = '<img src=x onerror="alert(1)"> see the report'
SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@dataclass
class Site:
    app: Any
    store: Store
    home: Path
    repo: Path
    secrets: dict[str, str]

    def client(self, name: str | None = None) -> TestClient:
        """A browser of its own (cookies apart), logged in as ``name`` when given."""
        client = TestClient(self.app, follow_redirects=False)
        if name is not None:
            done = log_in(client, self.secrets[name])
            assert done.status_code == 303, done.text
        return client

    def review_run(self, *, requested_by: str = "alice", title: str = XSS_TITLE) -> str:
        """A run of the submit blueprint that waits for review, with a real branch to merge."""
        base = head(self.repo)
        run_id = self.store.create_run(
            Task(
                blueprint="submit",
                repo=str(self.repo),
                title=title,
                params={"change_type": "feature"},
                source="api",
                requested_by=requested_by,
            )
        )
        branch = f"shipyard/{run_id}"
        git(self.repo, "branch", branch, base)
        git(self.repo, "worktree", "add", "--quiet", str(self.home / "wt" / run_id), branch)
        worktree = self.home / "wt" / run_id
        (worktree / "README.md").write_text(
            (worktree / "README.md").read_text() + f"\n{XSS_LINE}\n", encoding="utf-8"
        )
        git(worktree, "commit", "--quiet", "-am", "Mention the low-stock report")
        commit = git(worktree, "rev-parse", "HEAD")
        git(self.repo, "worktree", "remove", "--force", str(worktree))
        transcript = self.home / "runs" / run_id / "transcript.jsonl"
        record = Transcript.open(transcript)
        record.append(Message(role="user", content=f"Add the report. Key: {SECRET}"))
        record.append(Message(role="assistant", content="I will read README.md <b>first</b>."))
        record.record_compaction(
            CompactionMarker(
                replaced=("m1", "m2"), summary="asked for a report", tokens_before=900,
                tokens_after=120,
            )
        )  # fmt: skip
        for kind, data in [
            (EventType.LOG, {"message": "blueprint submit v1",
                             "reproducibility": {"blueprint": "submit", "blueprint_version": 1,
                                                 "shipyard": "test"}}),
            (EventType.NODE_STARTED, {"node": "prepare"}),
            (EventType.NODE_FINISHED, {"node": "prepare", "summary": "main at base"}),
            (EventType.AGENT_STARTED, {"provider": "replay", "model": "scripted",
                                       "transcript": str(transcript)}),
            (EventType.AGENT_STEP, {"step": 1, "input_tokens": 700, "output_tokens": 80,
                                    "spend": {"steps": 1, "tokens": 780, "cost_usd": 0.0123}}),
            (EventType.AGENT_COMPACTED, {"replaced": 2, "tokens_before": 900, "tokens_after": 120}),
            (EventType.CHANGE_COMMITTED, {"branch": branch, "commit": commit, "base": base}),
            (EventType.CHANGE_CLASSIFIED, {"change_type": "feature", "note": "declared"}),
            (EventType.GATE_FINISHED, {"gate": "tests", "phase": "verdict", "passed": True,
                                       "status": "passed", "summary": "12 passed"}),
            (EventType.GATE_FINISHED, {"gate": "coverage", "phase": "verdict", "passed": False,
                                       "status": "failed", "summary": "coverage fell",
                                       "details": ["<b>src/x.py</b> 40 %"]}),
            (EventType.DECISION_MADE, {"action": "REVIEW", "policy": "seed", "reasons": [
                {"rule": "routing.type", "action": "REVIEW",
                 "message": "feature changes need a person"},
                {"rule": "paths.outside_allowlist", "action": "REVIEW",
                 "message": "README.md <i>is</i> outside"}]}),
            (EventType.REVIEW_REQUESTED, {"branch": branch, "target": "main", "base": base}),
        ]:  # fmt: skip
            self.store.append(run_id, kind, data)
        return run_id


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("dashboard")
    repo = make_repo(root / "repo")
    home = root / "home"
    app = create_app(ServeSettings(home=home, scheduler=False))
    with TestClient(app):  # runs the lifespan: the server as `shipyard serve` starts it
        tokens = app.state.tokens
        secrets = {
            name: tokens.create(name=name, role=role, created_by="test")[1]
            for name, role in [
                ("alice", Role.REVIEWER),
                ("bob", Role.REVIEWER),
                ("vic", Role.VIEWER),
            ]
        }
        yield Site(app=app, store=app.state.shipyard.store, home=home, repo=repo, secrets=secrets)


def hidden_field(page: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def log_in(client: TestClient, token: str, next: str = "/runs") -> Any:
    """Post the login form as a browser does: from the login page, with its CSRF token."""
    form = client.get("/login", params={"next": next})
    data = {"token": token, "next": next, CSRF_FIELD: hidden_field(form.text, CSRF_FIELD)}
    return client.post("/login", data=data)


def csrf_of(client: TestClient) -> str:
    """The CSRF token the dashboard puts in its forms for this client's session."""
    page = client.get("/reviews").text
    marker = f'name="{CSRF_FIELD}" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]
