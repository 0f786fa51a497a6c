"""A real server for the API tests: the FastAPI app over a real store, a registered example
repository, a served package index, and tokens for every role.

Runs started through the API really execute (git, bubblewrap, pip against the local index).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shipyard.web import ServeSettings, create_app
from shipyard.web.auth import Role
from tests.conftest import EXAMPLES, example_index

sys.path.insert(0, str(EXAMPLES))
from scenario import PATCHES, make_repo

WEBHOOK_SECRET = "webhook-test-secret-5f1e"
ROLES = {"admin": Role.ADMIN, "alice": Role.REVIEWER, "bob": Role.REVIEWER, "vic": Role.VIEWER}


@dataclass
class Server:
    app: Any
    client: TestClient
    home: Path
    repo: Path
    index_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def get(self, path: str, who: str = "vic", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.auth(who), **kwargs)

    def post(self, path: str, who: str = "admin", **kwargs: Any) -> Any:
        return self.client.post(path, headers=self.auth(who), **kwargs)

    def submit(
        self, patch: str, *, who: str = "alice", change_type: str = "feature", **extra: Any
    ) -> str:
        """Start a ``submit`` run over the API; ``patch`` is a file in examples/patches or a diff."""
        text = patch if patch.startswith("diff --git") else (PATCHES / patch).read_text("utf-8")
        body = {
            "blueprint": "submit",
            "repo": "example",
            "patch": text,
            "change_type": change_type,
            **extra,
        }
        done = self.post("/api/tasks", who, json=body)
        assert done.status_code == 202, done.text
        (run_id,) = done.json()["run_ids"]
        return str(run_id)

    def wait(self, run_id: str, *, deadline: float = 240.0) -> dict[str, Any]:
        """The run once its blueprint ended (finished, or waiting for review)."""
        give_up = time.monotonic() + deadline
        while True:
            run = self.get(f"/api/runs/{run_id}").json()
            # The report is the blueprint's last word: after it, nothing more is recorded.
            if run["status"] not in ("queued", "running") and self._reported(run_id):
                return dict(run)
            assert time.monotonic() < give_up, f"run {run_id} still {run['status']}"
            time.sleep(0.2)

    def _reported(self, run_id: str) -> bool:
        events = self.get(f"/api/runs/{run_id}/events").json()["events"]
        return any("report" in e["data"] for e in events)


def new_feature(name: str) -> str:
    """A patch that adds a tested module ``inventory/<name>.py``: applies to any base, routes to REVIEW."""
    module = [f"def {name}(value: int) -> int:", "    return value + 1"]
    test = [
        f"from inventory.{name} import {name}",
        "",
        "",
        f"def test_{name}() -> None:",
        f"    assert {name}(1) == 2",
    ]
    return _new_file(f"src/inventory/{name}.py", module) + _new_file(f"tests/test_{name}.py", test)


def _new_file(path: str, lines: list[str]) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )


def make_server(root: Path, **settings: Any) -> Iterator[Server]:
    """A started server (its lifespan ran) with tokens for every role and the example repo registered."""
    from shipyard.deps.localindex import serve

    repo = make_repo(root / "repo")
    home = root / "home"
    options = {"scheduler": False, "webhook_secret": WEBHOOK_SECRET, **settings}
    app = create_app(ServeSettings(home=home, **options))
    with serve(example_index()) as index, TestClient(app) as client:
        server = Server(app=app, client=client, home=home, repo=repo, index_url=index.url)
        for name, role in ROLES.items():
            server.tokens[name] = app.state.tokens.create(name=name, role=role, created_by="test")[
                1
            ]
        done = server.post(
            "/api/repos",
            json={"name": "example", "path": str(repo), "github": "acme/example",
                  "index_url": index.url},
        )  # fmt: skip
        assert done.status_code == 201, done.text
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from make_server(tmp_path_factory.mktemp("server"))
