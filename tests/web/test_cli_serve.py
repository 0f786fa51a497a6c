"""``shipyard token`` and ``shipyard serve`` as a user runs them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHIPYARD, shipyard_cli

pytestmark = pytest.mark.slow


def test_tokens_are_created_once_listed_without_secrets_and_revoked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = json.loads(
        shipyard_cli(home, "token", "create", "--name", "ci", "--role", "reviewer", "--json").stdout
    )
    assert made["token"].startswith("shy_")
    assert made["role"] == "reviewer"
    listed = shipyard_cli(home, "token", "list", "--json").stdout
    assert made["token"] not in listed
    assert [t["name"] for t in json.loads(listed)] == ["ci"]
    assert made["token"].encode() not in (home / "shipyard.db").read_bytes()

    wrong = shipyard_cli(home, "token", "create", "--name", "x", "--role", "root", ok=False)
    assert wrong.returncode == 2
    assert "unknown role 'root'; use one of: viewer, reviewer, admin" in wrong.stderr

    revoked = shipyard_cli(home, "token", "revoke", made["id"]).stdout
    assert f"token {made['id']} (ci) revoked" in revoked
    missing = shipyard_cli(home, "token", "revoke", "tok_nope", ok=False)
    assert missing.returncode == 7
    assert "no API token 'tok_nope'" in missing.stderr


def test_serve_answers_with_the_token_it_was_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token = json.loads(
        shipyard_cli(home, "token", "create", "--name", "v", "--role", "viewer", "--json").stdout
    )["token"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "SHIPYARD_HOME": str(home)}
    with subprocess.Popen(
        [SHIPYARD, "serve", "--port", str(port), "--no-scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            url = f"http://127.0.0.1:{port}"
            give_up = time.monotonic() + 60
            while True:
                try:
                    health = httpx.get(f"{url}/healthz", timeout=5)
                    break
                except httpx.TransportError:
                    assert server.poll() is None, "shipyard serve exited"
                    assert time.monotonic() < give_up, "shipyard serve did not start"
                    time.sleep(0.2)
            assert health.json()["status"] == "ok"
            assert httpx.get(f"{url}/api/runs", timeout=5).status_code == 401
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(f"{url}/api/runs", headers=auth, timeout=5).json()["runs"] == []
            metrics = httpx.get(f"{url}/metrics", headers=auth, timeout=5).text
            assert "shipyard_queue_depth" in metrics
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=30)
    assert f"serving on http://127.0.0.1:{port}" in output
    assert token not in output


def test_repositories_are_registered_listed_and_removed_from_the_command_line(
    tmp_path: Path,
) -> None:
    import sys

    from tests.conftest import EXAMPLES

    sys.path.insert(0, str(EXAMPLES))
    from scenario import make_repo

    home = tmp_path / "home"
    repo = make_repo(tmp_path / "shop")
    added = shipyard_cli(
        home, "repo", "add", "shop", str(repo), "--index-url", "http://127.0.0.1:1/simple/"
    )
    assert f"repository shop registered: {repo}" in added.stdout
    listed = json.loads(shipyard_cli(home, "repo", "list", "--json").stdout)
    assert [(r["name"], r["path"], r["index_url"]) for r in listed] == [
        ("shop", str(repo), "http://127.0.0.1:1/simple/")
    ]
    again = shipyard_cli(home, "repo", "add", "shop", str(repo), ok=False)
    assert again.returncode != 0
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr
    nowhere = shipyard_cli(home, "repo", "add", "other", str(tmp_path / "missing"), ok=False)
    assert nowhere.returncode != 0
    assert "Traceback" not in nowhere.stderr
    bad_index = shipyard_cli(
        home, "repo", "add", "x", str(repo), "--index-url", "file:///etc", ok=False
    )
    assert "not an http(s) URL" in bad_index.stderr
    assert "repository shop removed" in shipyard_cli(home, "repo", "remove", "shop").stdout
    assert json.loads(shipyard_cli(home, "repo", "list", "--json").stdout) == []
