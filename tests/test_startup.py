"""Every command starts by importing the CLI and opening the store; what only runs need (the
blueprints and the sandbox behind them, the index client, Alembic, Celery, the web server, models)
loads when a command uses it, so that reading commands answer quickly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DEFERRED = (
    "alembic",
    "celery",
    "fastapi",
    "httpx",
    "openai",
    "shipyard.blueprints.engine",
    "shipyard.delivery.queue",
    "shipyard.executor.local",
    "shipyard.gates.harness",
    "shipyard.rollout.runner",
    "torch",
)


PYTHONPATH = os.environ.get("PYTHONPATH", "")


def loaded_after(code: str, home: Path) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"SHIPYARD_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": PYTHONPATH},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_cli_and_a_current_store_load_nothing_a_run_alone_needs(tmp_path: Path) -> None:
    from shipyard.store import Store

    Store.open(home=tmp_path).close()  # migrated once, as any installation in use is
    loaded = loaded_after(
        "from shipyard.cli import app\nfrom shipyard.app import App\nApp().runs()", tmp_path
    )
    assert "shipyard.store.store" in loaded  # the probe did open the store
    assert sorted(loaded & set(DEFERRED)) == []


def test_the_deferred_parts_are_there_when_a_command_needs_them(tmp_path: Path) -> None:
    loaded = loaded_after(
        "from shipyard.app import App\nApp().executor\nimport shipyard.deps as d\nd.PackageIndex",
        tmp_path,
    )
    assert {"shipyard.executor.local", "shipyard.blueprints.engine", "httpx"} <= loaded
