"""Merge, roll out, watch, revert: the real CLI, git, bubblewrap and a real Prometheus.

The deploy hook is a script that, like a release would, changes the test service's error rate:
the healthy release keeps it under the threshold, the harmful one pushes it far above.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, needs_bwrap, shipyard_cli
from tests.rollout.conftest import ERROR_RATE_QUERY, PrometheusServer

sys.path.insert(0, str(EXAMPLES))
from scenario import _git, head, make_repo

pytestmark = [pytest.mark.slow, needs_bwrap, pytest.mark.xdist_group("prometheus")]

SHIPYARD = str(Path(sys.executable).with_name("shipyard"))

DEPLOY = """\
import os, pathlib, urllib.request
action, percent = os.environ["SHIPYARD_ACTION"], os.environ["SHIPYARD_PERCENT"]
with open({log!r}, "a") as log:
    log.write(f"{{action}} {{percent}} {{os.environ['SHIPYARD_STAGE']}} {{os.environ['SHIPYARD_COMMIT'][:12]}}\\n")
rate = {release_errors} if action == "deploy" else 0
urllib.request.urlopen({service!r} + f"/set?error_percent={{rate}}").close()
"""


def cli(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    return shipyard_cli(home, *args, ok=ok)


def repo_with_rollout(tmp_path: Path, rollout: str) -> Path:
    repo = make_repo(tmp_path / "repo")
    config = repo / "shipyard.toml"
    config.write_text(config.read_text() + rollout)
    _git("commit", "-qam", "Roll out every merge", cwd=repo)
    return repo


def docs_patch(repo: Path, tmp_path: Path) -> Path:
    """A documentation change, which the seed policy merges by itself."""
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\nDeployed in stages by shipyard.\n")
    patch = tmp_path / "docs.patch"
    patch.write_text(_git("diff", cwd=repo) + "\n")
    _git("checkout", "--", "README.md", cwd=repo)
    return patch


def rollout_toml(prometheus: PrometheusServer, deploy: Path, **fields: object) -> str:
    settings = "\n".join(f"{k} = {json.dumps(v)}" for k, v in fields.items())
    return f"""
[rollout]
enabled = true
{settings}

[rollout.health]
prometheus_url = "{prometheus.url}"
query = "{ERROR_RATE_QUERY}"

[rollout.deploy]
command = [{json.dumps(sys.executable)}, "{deploy}"]
"""


def merge_docs_change(tmp_path: Path, repo: Path, home: Path, index_url: str) -> dict[str, object]:
    cli(
        home, "submit", "--repo", str(repo), "--patch", str(docs_patch(repo, tmp_path)),
        "--type", "documentation", "--title", "docs", "--index-url", index_url,
    )  # fmt: skip
    [run] = json.loads(cli(home, "runs", "list", "--json").stdout)
    return dict(run)


def test_a_harmful_release_is_rolled_back_and_reverted(
    tmp_path: Path, prometheus: PrometheusServer, index_url: str
) -> None:
    log = tmp_path / "deploys.log"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(DEPLOY.format(log=str(log), release_errors=8, service=prometheus.service.url))
    repo = repo_with_rollout(
        tmp_path,
        rollout_toml(
            prometheus,
            deploy,
            stages=[25, 100],
            stage_seconds=60,
            watch_seconds=120,
            baseline_seconds=3,
            check_interval_seconds=1,
        ),
    )
    home = tmp_path / "home"
    run = merge_docs_change(tmp_path, repo, home, index_url)
    assert run["status"] == "rolling_out", run
    merged = head(repo)
    assert "Deployed in stages" in (repo / "README.md").read_text()

    watched = cli(home, "rollout", "watch", "--max-seconds", "90")
    assert "reverted" in watched.stdout, watched.stdout

    state = json.loads(cli(home, "runs", "show", str(run["run_id"]), "--json").stdout)["run"]
    assert state["status"] == "rolled_back"
    rollout = state["rollout"]
    assert rollout["stage"] == 1  # never reached 100 %
    assert rollout["seconds_to_revert"] < 30
    assert "is above the baseline" in rollout["reason"]
    # The hook took the traffic back, and the merge is undone by a commit on main.
    calls = log.read_text().splitlines()
    assert calls[0].startswith("deploy 25 1 ")
    assert calls[-1].startswith("rollback 0 0 ")
    assert head(repo) != merged
    message = _git("log", "-1", "--format=%B", "main", cwd=repo)
    assert f"Shipyard-Rollback: {run['run_id']}" in message
    assert "Deployed in stages" not in (repo / "README.md").read_text()  # checked out: reverted
    assert _git("rev-parse", "main^1", cwd=repo) == merged
    # The report and the status command show it.
    report = (home / "runs" / str(run["run_id"]) / "report.md").read_text()
    assert "## Rollout" in report
    assert "rolled back" in report
    assert "← breach" in report
    status = cli(home, "rollout", "status", str(run["run_id"])).stdout
    assert "ROLLED BACK" in status
    assert "Health readings" in status
    stats = json.loads(cli(home, "rollout", "stats", "--json").stdout)
    assert (stats["rolled_back"], stats["rollback_rate"]) == (1, 1.0)
    # A second watch has nothing to do, and reverts nothing twice.
    again = cli(home, "rollout", "watch", "--max-seconds", "5")
    assert "no rollout under way" in again.stdout
    assert _git("rev-list", "--count", "main", cwd=repo) == "5"


def test_a_healthy_release_goes_through_every_stage(
    tmp_path: Path, prometheus: PrometheusServer, index_url: str
) -> None:
    log = tmp_path / "deploys.log"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(
        DEPLOY.format(log=str(log), release_errors=0.4, service=prometheus.service.url)
    )
    repo = repo_with_rollout(
        tmp_path,
        rollout_toml(
            prometheus,
            deploy,
            stages=[50, 100],
            stage_seconds=2,
            watch_seconds=10,
            baseline_seconds=3,
            check_interval_seconds=1,
        ),
    )
    home = tmp_path / "home"
    run = merge_docs_change(tmp_path, repo, home, index_url)
    merged = head(repo)
    watched = cli(home, "rollout", "watch", "--max-seconds", "60")
    assert "rolled out" in watched.stdout, watched.stdout
    state = json.loads(cli(home, "runs", "show", str(run["run_id"]), "--json").stdout)["run"]
    assert state["status"] == "merged"
    assert state["rollout"]["stage"] == 2
    assert [line.split()[:3] for line in log.read_text().splitlines()] == [
        ["deploy", "50", "1"],
        ["deploy", "100", "2"],
    ]
    assert head(repo) == merged  # nothing reverted


def test_an_unreadable_health_source_stops_the_rollout_before_any_stage(
    tmp_path: Path, prometheus: PrometheusServer, index_url: str
) -> None:
    log = tmp_path / "deploys.log"
    deploy = tmp_path / "deploy.py"
    deploy.write_text(DEPLOY.format(log=str(log), release_errors=0, service=prometheus.service.url))
    dead = PrometheusServer.__new__(PrometheusServer)
    dead.url = "http://127.0.0.1:9"  # nothing listens on the discard port
    repo = repo_with_rollout(tmp_path, rollout_toml(dead, deploy, baseline_seconds=3))
    home = tmp_path / "home"
    run = merge_docs_change(tmp_path, repo, home, index_url)
    merged = head(repo)
    watched = cli(home, "rollout", "watch", "--max-seconds", "30")
    assert "rollout stopped" in watched.stdout
    state = json.loads(cli(home, "runs", "show", str(run["run_id"]), "--json").stdout)["run"]
    assert state["status"] == "rollout_stopped"
    assert "prometheus_url" in state["rollout"]["reason"]
    assert not log.exists()  # no stage was deployed on a signal nobody can read
    assert head(repo) == merged  # and nothing was reverted either
    listed = cli(home, "runs", "list").stdout
    assert "ROLLOUT STOPPED" in listed
