"""The backup commands docs/operations.md gives, run exactly as written against a store that a running
server is writing to (SQLite in WAL mode), and the copy opened as a shipyard home of its own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shipyard.events import EventType
from shipyard.model import Task
from shipyard.store import Store
from shipyard.web import ServeSettings, create_app
from shipyard.web.auth import Role, TokenStore
from tests.conftest import ROOT

OPERATIONS = ROOT / "docs" / "operations.md"


def documented(program: str) -> str:
    """The first ``$ <program> ...`` command of the Backups section."""
    text = OPERATIONS.read_text(encoding="utf-8")
    section = text[text.index("## Backups") : text.index("## Upgrades")]
    found = re.search(rf"^\s*\$ ({re.escape(program)} .+)$", section, re.MULTILINE)
    assert found, f"docs/operations.md has no `{program}` command under Backups"
    return found.group(1)


@pytest.mark.parametrize("program", ["sqlite3", "python3"])
def test_the_documented_sqlite_backup_copies_a_live_store_that_opens_whole(
    tmp_path: Path, program: str
) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (Debian package {program})")
    home = tmp_path / "home"
    app = create_app(ServeSettings(home=home, scheduler=False))
    with TestClient(app) as client:  # the server is running: its store is open, in WAL mode
        store: Store = app.state.shipyard.store
        _, secret = app.state.tokens.create(name="alice", role=Role.REVIEWER, created_by="test")
        run_id = store.create_run(Task(blueprint="submit", repo=str(tmp_path), title="kept"))
        for n in range(50):
            store.append(run_id, EventType.LOG, {"message": f"line {n}"})
        assert (home / "shipyard.db-wal").exists()  # recent writes are still in the WAL
        backups = tmp_path / "backups"
        backups.mkdir()
        command = documented(program).replace("/backups/", f"{backups}/")
        done = subprocess.run(
            ["bash", "-c", command],
            env={**os.environ, "SHIPYARD_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert client.get("/healthz").status_code == 200  # the server kept running

    (copy,) = backups.glob("shipyard-*.db")
    restored = tmp_path / "restored"
    restored.mkdir()
    copy.rename(restored / "shipyard.db")
    with Store.open(home=restored) as store:
        events = store.events(run_id)
        assert [e.data["message"] for e in events if e.type == EventType.LOG][-1] == "line 49"
        assert store.state(run_id).task["title"] == "kept"
        found = TokenStore(store).authenticate(secret)
        assert found is not None
        assert found.name == "alice"
